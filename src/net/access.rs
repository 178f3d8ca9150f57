//! Who may associate: calling AE titles, peer addresses, the called AE title.

use dicom_ul::association::server::AccessControl;
use dicom_ul::pdu::{AssociationRJServiceUserReason, UserIdentity};
use std::net::IpAddr;

/// One `allowed_ips` entry: an address or a CIDR block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpRule {
    net: IpAddr,
    prefix: u8,
}

impl IpRule {
    pub fn parse(s: &str) -> Result<IpRule, String> {
        let (addr, prefix) = match s.trim().split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s.trim(), None),
        };
        let net: IpAddr = addr
            .parse()
            .map_err(|_| "expected an IP address or CIDR block such as 10.0.0.0/8".to_string())?;
        let max = if net.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) => p
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| format!("prefix length must be 0 to {max}"))?,
        };
        Ok(IpRule { net, prefix })
    }

    pub fn matches(&self, ip: IpAddr) -> bool {
        match (self.net, ip.to_canonical()) {
            (IpAddr::V4(n), IpAddr::V4(a)) => {
                prefix_eq(&n.octets(), &a.octets(), self.prefix as usize)
            }
            (IpAddr::V6(n), IpAddr::V6(a)) => {
                prefix_eq(&n.octets(), &a.octets(), self.prefix as usize)
            }
            _ => false,
        }
    }
}

fn prefix_eq(a: &[u8], b: &[u8], bits: usize) -> bool {
    let (bytes, rest) = (bits / 8, bits % 8);
    if a[..bytes] != b[..bytes] {
        return false;
    }
    rest == 0 || {
        let mask = 0xFFu8 << (8 - rest);
        a[bytes] & mask == b[bytes] & mask
    }
}

/// The association policy for one connection (the peer address is already
/// known, the AE titles come with the request).
#[derive(Debug, Clone)]
pub struct Gate {
    pub allowed_calling: Vec<String>,
    pub check_called: bool,
    pub ip_allowed: bool,
}

impl AccessControl for Gate {
    fn check_access(
        &self,
        this_ae_title: &str,
        calling_ae_title: &str,
        called_ae_title: &str,
        _user_identity: Option<&UserIdentity>,
    ) -> Result<(), AssociationRJServiceUserReason> {
        if !self.ip_allowed {
            return Err(AssociationRJServiceUserReason::NoReasonGiven);
        }
        let calling = calling_ae_title.trim();
        if !self.allowed_calling.is_empty()
            && !self.allowed_calling.iter().any(|a| a.trim() == calling)
        {
            return Err(AssociationRJServiceUserReason::CallingAETitleNotRecognized);
        }
        if self.check_called && called_ae_title.trim() != this_ae_title.trim() {
            return Err(AssociationRJServiceUserReason::CalledAETitleNotRecognized);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ip_rules_match_addresses_and_blocks() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let r = IpRule::parse("10.1.0.0/16").unwrap();
        assert!(r.matches(ip("10.1.200.3")));
        assert!(!r.matches(ip("10.2.0.1")));
        assert!(r.matches(ip("::ffff:10.1.0.9")));
        assert!(IpRule::parse("127.0.0.1").unwrap().matches(ip("127.0.0.1")));
        assert!(!IpRule::parse("127.0.0.1").unwrap().matches(ip("127.0.0.2")));
        assert!(IpRule::parse("0.0.0.0/0").unwrap().matches(ip("8.8.8.8")));
        assert!(IpRule::parse("10.0.0.0/33").is_err());
        assert!(IpRule::parse("pacs.local").is_err());
    }

    #[test]
    fn gate_checks_calling_and_called() {
        let g = Gate {
            allowed_calling: vec!["GOODSCU".into()],
            check_called: true,
            ip_allowed: true,
        };
        assert!(g
            .check_access("DEIDGATE", "GOODSCU", "DEIDGATE", None)
            .is_ok());
        assert_eq!(
            g.check_access("DEIDGATE", "BADSCU", "DEIDGATE", None),
            Err(AssociationRJServiceUserReason::CallingAETitleNotRecognized)
        );
        assert_eq!(
            g.check_access("DEIDGATE", "GOODSCU", "OTHER", None),
            Err(AssociationRJServiceUserReason::CalledAETitleNotRecognized)
        );
        let closed = Gate {
            ip_allowed: false,
            ..g
        };
        assert!(closed
            .check_access("DEIDGATE", "GOODSCU", "DEIDGATE", None)
            .is_err());
    }
}
