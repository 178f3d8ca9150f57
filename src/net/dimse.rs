//! The few DIMSE command sets the receiver reads and writes. Commands are
//! always Implicit VR Little Endian group 0000 without sequences, so a flat
//! walk is all it takes.

pub const C_STORE_RQ: u16 = 0x0001;
pub const C_STORE_RSP: u16 = 0x8001;
pub const C_ECHO_RQ: u16 = 0x0030;
pub const C_ECHO_RSP: u16 = 0x8030;
const NO_DATA_SET: u16 = 0x0101;

/// C-STORE / C-ECHO response statuses (PS3.4 Annex B and PS3.7 Annex C).
pub mod status {
    pub const SUCCESS: u16 = 0x0000;
    /// Refused: SOP class not supported.
    pub const SOP_CLASS_NOT_SUPPORTED: u16 = 0x0122;
    /// Refused: out of resources (spool not writable, disk full).
    pub const OUT_OF_RESOURCES: u16 = 0xA700;
    /// Error: data set does not match SOP class.
    pub const DATA_SET_MISMATCH: u16 = 0xA900;
    /// Error: cannot understand.
    pub const CANNOT_UNDERSTAND: u16 = 0xC000;
}

/// The fields of a request command that the receiver uses.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Command {
    pub field: u16,
    pub message_id: u16,
    pub sop_class: String,
    pub sop_instance: String,
    pub has_data_set: bool,
    /// Status (0000,0900), present in responses.
    pub status: Option<u16>,
}

/// Parse a command set. Errors say what is wrong, never a value.
pub fn parse(bytes: &[u8]) -> Result<Command, String> {
    let mut c = Command::default();
    let (mut pos, mut seen_field) = (0usize, false);
    while pos < bytes.len() {
        let head = bytes
            .get(pos..pos + 8)
            .ok_or("command set ends inside an element header")?;
        let group = u16::from_le_bytes([head[0], head[1]]);
        let elem = u16::from_le_bytes([head[2], head[3]]);
        let len = u32::from_le_bytes([head[4], head[5], head[6], head[7]]) as usize;
        let value = bytes
            .get(pos + 8..pos + 8 + len)
            .ok_or("command element runs past the end of the command set")?;
        if group != 0x0000 {
            return Err(format!("element of group {group:04X} in a command set"));
        }
        let u16_value = || -> Result<u16, String> {
            value
                .get(..2)
                .map(|v| u16::from_le_bytes([v[0], v[1]]))
                .ok_or_else(|| format!("command element (0000,{elem:04X}) is too short"))
        };
        match elem {
            0x0002 => c.sop_class = uid(value),
            0x0100 => {
                c.field = u16_value()?;
                seen_field = true;
            }
            0x0110 => c.message_id = u16_value()?,
            0x0800 => c.has_data_set = u16_value()? != NO_DATA_SET,
            0x1000 => c.sop_instance = uid(value),
            0x0900 => c.status = Some(u16_value()?),
            _ => {}
        }
        pos += 8 + len;
    }
    if !seen_field {
        return Err("command set without a Command Field".into());
    }
    Ok(c)
}

fn uid(v: &[u8]) -> String {
    String::from_utf8_lossy(v)
        .trim_end_matches(['\0', ' '])
        .trim()
        .to_string()
}

/// C-STORE-RQ (medium priority, data set follows) for the forwarder.
pub fn store_request(sop_class: &str, sop_instance: &str, message_id: u16) -> Vec<u8> {
    let mut b = Builder::default();
    b.uid(0x0002, sop_class);
    b.u16(0x0100, C_STORE_RQ);
    b.u16(0x0110, message_id);
    b.u16(0x0700, 0x0000);
    b.u16(0x0800, 0x0000);
    b.uid(0x1000, sop_instance);
    b.finish()
}

/// C-ECHO-RSP with status Success.
pub fn echo_response(rq: &Command) -> Vec<u8> {
    let mut b = Builder::default();
    b.uid(0x0002, &rq.sop_class);
    b.u16(0x0100, C_ECHO_RSP);
    b.u16(0x0120, rq.message_id);
    b.u16(0x0800, NO_DATA_SET);
    b.u16(0x0900, status::SUCCESS);
    b.finish()
}

/// C-STORE-RSP with `status` and, for failures, a short comment (no PHI).
pub fn store_response(rq: &Command, status: u16, comment: Option<&str>) -> Vec<u8> {
    let mut b = Builder::default();
    b.uid(0x0002, &rq.sop_class);
    b.u16(0x0100, C_STORE_RSP);
    b.u16(0x0120, rq.message_id);
    b.u16(0x0800, NO_DATA_SET);
    b.u16(0x0900, status);
    if let Some(c) = comment {
        // Error Comment is LO: at most 64 characters.
        let c: String = c
            .chars()
            .filter(|c| c.is_ascii() && *c != '\\')
            .take(64)
            .collect();
        b.text(0x0902, &c, b' ');
    }
    b.uid(0x1000, &rq.sop_instance);
    b.finish()
}

/// Implicit VR LE group 0000, elements added in ascending order.
#[derive(Default)]
struct Builder {
    body: Vec<u8>,
}

impl Builder {
    fn element(&mut self, elem: u16, value: &[u8]) {
        self.body.extend_from_slice(&0u16.to_le_bytes());
        self.body.extend_from_slice(&elem.to_le_bytes());
        self.body
            .extend_from_slice(&(value.len() as u32).to_le_bytes());
        self.body.extend_from_slice(value);
    }

    fn u16(&mut self, elem: u16, v: u16) {
        self.element(elem, &v.to_le_bytes());
    }

    fn uid(&mut self, elem: u16, v: &str) {
        self.text(elem, v, 0);
    }

    fn text(&mut self, elem: u16, v: &str, pad: u8) {
        let mut bytes = v.as_bytes().to_vec();
        if bytes.len() % 2 == 1 {
            bytes.push(pad);
        }
        self.element(elem, &bytes);
    }

    /// Prefix the Command Group Length.
    fn finish(self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.body.len() + 12);
        out.extend_from_slice(&[0, 0, 0, 0, 4, 0, 0, 0]);
        out.extend_from_slice(&(self.body.len() as u32).to_le_bytes());
        out.extend_from_slice(&self.body);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_request_parses_back() {
        let rq = parse(&store_request("1.2.840.10008.5.1.4.1.1.4", "2.25.9", 3)).unwrap();
        assert_eq!(
            (rq.field, rq.message_id, rq.has_data_set),
            (C_STORE_RQ, 3, true)
        );
        assert_eq!(rq.sop_instance, "2.25.9");
        assert_eq!(rq.status, None);
    }

    #[test]
    fn response_round_trips_and_is_even() {
        let rq = Command {
            field: C_STORE_RQ,
            message_id: 7,
            sop_class: "1.2.840.10008.5.1.4.1.1.4".into(),
            sop_instance: "1.2.3.45".into(),
            has_data_set: true,
            status: None,
        };
        let rsp = store_response(&rq, status::CANNOT_UNDERSTAND, Some("odd"));
        let group_len = u32::from_le_bytes(rsp[8..12].try_into().unwrap()) as usize;
        assert_eq!(group_len, rsp.len() - 12);
        let back = parse(&rsp).unwrap();
        assert_eq!(back.field, C_STORE_RSP);
        assert_eq!(back.sop_class, rq.sop_class);
        assert_eq!(back.sop_instance, rq.sop_instance);
        assert_eq!(back.status, Some(status::CANNOT_UNDERSTAND));
        assert!(!back.has_data_set);
        let echo = parse(&echo_response(&rq)).unwrap();
        assert_eq!(echo.field, C_ECHO_RSP);
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert!(parse(&[1, 2, 3]).is_err());
        assert!(parse(&[0, 0, 0x00, 0x01, 0xFF, 0xFF, 0xFF, 0xFF]).is_err());
        assert!(parse(&[]).is_err());
        assert!(parse(&[8, 0, 0x16, 0, 0, 0, 0, 0]).is_err());
    }
}
