//! Fuzzing the receive path with mutated real inputs. Ignored in CI (it runs
//! for minutes); run it with `scripts/fuzz.sh` (FUZZ_SECS, FUZZ_SEED):
//!
//! - `fuzz_files`: mutated DICOM files (bit flips, corrupted lengths,
//!   truncation, spliced bytes) through precheck, parse and de-identification.
//!   Every case must end written or quarantined, never panic.
//! - `fuzz_network`: mutated association byte streams (A-ASSOCIATE-RQ,
//!   C-STORE command and data set PDUs) sent raw to `deidgate serve`. After
//!   every batch the process must be alive and answer C-ECHO; nothing may
//!   appear in `out/` that was not acknowledged.

mod common;

use common::gateway::*;
use common::*;
use deidgate::pipeline::instance::{FileOutcome, Stage};
use deidgate::pipeline::quarantine::Quarantine;
use dicom_ul::pdu::{
    write_pdu, AssociationRQ, PDataValue, PDataValueType, Pdu, PresentationContextProposed,
    UserVariableItem,
};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

/// xorshift64*: small, seeded, reproducible.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

fn budget() -> (Duration, u64) {
    let secs = std::env::var("FUZZ_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(60);
    let seed = std::env::var("FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5EED);
    (Duration::from_secs(secs), seed)
}

/// One random mutation of `input`.
fn mutate(rng: &mut Rng, input: &[u8]) -> Vec<u8> {
    let mut b = input.to_vec();
    if b.is_empty() {
        return b;
    }
    for _ in 0..1 + rng.below(8) {
        let i = rng.below(b.len());
        match rng.below(6) {
            0 => b[i] ^= 1 << rng.below(8),
            1 => b[i] = rng.next() as u8,
            // A plausible length field gone wild.
            2 if i + 4 <= b.len() => {
                b[i..i + 4].copy_from_slice(&(rng.next() as u32).to_le_bytes())
            }
            3 => b.truncate(i.max(1)),
            4 => {
                let j = rng.below(b.len());
                let chunk: Vec<u8> = b[j..(j + 1 + rng.below(64)).min(b.len())].to_vec();
                b.splice(i..i, chunk);
            }
            _ => b[i] = 0xFF,
        }
        if b.is_empty() {
            break;
        }
    }
    b
}

#[test]
#[ignore = "minutes long: run scripts/fuzz.sh"]
fn fuzz_files() {
    let (budget, seed) = budget();
    let tmp = tempfile::tempdir().unwrap();
    let rt = runtime(&tmp.path().join("data"), "");
    let q = Quarantine::new(rt.quarantine_dir());
    let seeds: Vec<Vec<u8>> = [
        "mr/MR_small.dcm",
        "ct/CT_small.dcm",
        "other/test-SR.dcm",
        "ts/image_dfl.dcm",
        "mr/emri_small_RLE.dcm",
    ]
    .iter()
    .map(|p| std::fs::read(data_dir().join("dicom").join(p)).unwrap())
    .collect();
    let mut rng = Rng(seed);
    let (mut n, mut written, mut slowest) = (0u64, 0u64, Duration::ZERO);
    let start = Instant::now();
    while start.elapsed() < budget {
        let pick = rng.below(seeds.len());
        let case = mutate(&mut rng, &seeds[pick]);
        let t = Instant::now();
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            Stage {
                deid: &rt.deid,
                filter: &rt.config.filter,
                routes: &rt.routes,
                out_root: &tmp.path().join("out"),
                quarantine: &q,
                durable: false,
                claims: &rt.claims,
            }
            .process(&case, "fuzz")
        }));
        slowest = slowest.max(t.elapsed());
        match r {
            Ok(Ok(FileOutcome::Written { .. })) => written += 1,
            Ok(Ok(FileOutcome::Quarantined { .. })) => {}
            Ok(Err(e)) => panic!("case {n} (seed {seed}): I/O error {e:#}"),
            Err(_) => {
                std::fs::write(tmp.path().join("crash.dcm"), &case).unwrap();
                panic!("case {n} (seed {seed}) panicked");
            }
        }
        n += 1;
    }
    eprintln!(
        "fuzz_files: {n} cases, {written} written, the rest quarantined; slowest {slowest:?}"
    );
}

/// A valid association carrying one C-STORE, as raw PDU bytes.
fn association_bytes(dataset: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let rq = Pdu::AssociationRQ(AssociationRQ {
        protocol_version: 1,
        calling_ae_title: "FUZZER".into(),
        called_ae_title: "DEIDGATE".into(),
        application_context_name: "1.2.840.10008.3.1.1.1".into(),
        presentation_contexts: vec![PresentationContextProposed {
            id: 1,
            abstract_syntax: "1.2.840.10008.5.1.4.1.1.4".into(),
            transfer_syntaxes: vec!["1.2.840.10008.1.2.1".into()],
        }],
        user_variables: vec![UserVariableItem::MaxLength(16384)],
    });
    write_pdu(&mut out, &rq).unwrap();
    let cmd = deidgate::net::dimse::store_request("1.2.840.10008.5.1.4.1.1.4", "1.2.3.4.5.6.7", 1);
    for (kind, data) in [
        (PDataValueType::Command, cmd),
        (PDataValueType::Data, dataset.to_vec()),
    ] {
        let pdu = Pdu::PData {
            data: vec![PDataValue {
                presentation_context_id: 1,
                value_type: kind,
                is_last: true,
                data,
            }],
        };
        write_pdu(&mut out, &pdu).unwrap();
    }
    write_pdu(&mut out, &Pdu::ReleaseRQ).unwrap();
    out
}

#[test]
#[ignore = "minutes long: run scripts/fuzz.sh"]
fn fuzz_network() {
    let (budget, seed) = budget();
    let tmp = tempfile::tempdir().unwrap();
    let g = Gateway::start(tmp.path(), "");
    let file = std::fs::read(data_dir().join("dicom/mr/MR_small.dcm")).unwrap();
    // The data set part of the file (after preamble, magic and meta group).
    let meta_len = u32::from_le_bytes(file[140..144].try_into().unwrap()) as usize;
    let stream = association_bytes(&file[144 + meta_len..]);
    let mut rng = Rng(seed);
    let (mut n, start) = (0u64, Instant::now());
    while start.elapsed() < budget {
        let case = mutate(&mut rng, &stream);
        if let Ok(mut s) = TcpStream::connect(("127.0.0.1", g.port)) {
            s.set_read_timeout(Some(Duration::from_millis(300))).ok();
            let _ = s.write_all(&case);
            let mut sink = [0u8; 4096];
            let _ = s.read(&mut sink);
        }
        n += 1;
        if n % 50 == 0 {
            let echo = g.echo("FUZZER", "DEIDGATE");
            assert!(
                echo.status.success(),
                "after {n} cases (seed {seed}) C-ECHO fails:\n{}",
                g.log()
            );
        }
    }
    let echo = g.echo("FUZZER", "DEIDGATE");
    assert!(
        echo.status.success(),
        "after {n} cases C-ECHO fails:\n{}",
        g.log()
    );
    assert!(
        !g.log().contains("panicked"),
        "a task panicked:\n{}",
        g.log()
    );
    eprintln!("fuzz_network: {n} mutated associations, gateway alive");
}
