//! Output of `alarm list` and `alarm disarm`: simple (each alarm as
//! gogo-protobuf's compact text), fields, json and protobuf; no table.

use std::fmt::Write as _;

use prost::Message;

use rsetcd::proto::etcdserverpb::{AlarmMember, AlarmResponse, AlarmType};

use super::{fields_header, json_header, json_line, write_stdout, Format, JsonObject, Printer};
use crate::exit::CtlResult;

impl Printer {
    pub fn alarm(&self, resp: &AlarmResponse) -> CtlResult {
        let out = match self.format {
            Format::Simple => {
                let mut s = String::new();
                for member in &resp.alarms {
                    let _ = writeln!(s, "{}", compact_text(member));
                }
                s.into_bytes()
            }
            Format::Fields => {
                let mut s = String::new();
                fields_header(&mut s, resp.header.as_ref());
                for member in &resp.alarms {
                    let _ = writeln!(s, "\"MemberID\" : {}", member.member_id);
                    let _ = writeln!(s, "\"AlarmType\" : {}", alarm_name(member.alarm));
                    s.push('\n');
                }
                s.into_bytes()
            }
            Format::Json => json_line(&json_alarm(resp)),
            Format::Protobuf => resp.encode_to_vec(),
            Format::Table => return Err(self.unsupported()),
        };
        write_stdout(&out)
    }
}

/// Go's `AlarmType.String()`: the enum name, or the number if unknown.
fn alarm_name(alarm: i32) -> String {
    match AlarmType::try_from(alarm) {
        Ok(known) => known.as_str_name().to_string(),
        Err(_) => alarm.to_string(),
    }
}

/// gogo-protobuf's `CompactTextString`, which `%+v` prints: every set
/// field as `name:value` followed by a space.
fn compact_text(member: &AlarmMember) -> String {
    let mut s = String::new();
    if member.member_id != 0 {
        let _ = write!(s, "memberID:{} ", member.member_id);
    }
    if member.alarm != 0 {
        let _ = write!(s, "alarm:{} ", alarm_name(member.alarm));
    }
    s
}

fn json_alarm(resp: &AlarmResponse) -> String {
    let mut o = JsonObject::new();
    json_header(&mut o, resp.header.as_ref());
    if !resp.alarms.is_empty() {
        let items: Vec<String> = resp
            .alarms
            .iter()
            .map(|member| {
                let mut m = JsonObject::new();
                m.num("memberID", member.member_id);
                m.num("alarm", member.alarm);
                m.finish()
            })
            .collect();
        o.raw("alarms", format!("[{}]", items.join(",")));
    }
    o.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nospace(member_id: u64) -> AlarmMember {
        AlarmMember {
            member_id,
            alarm: AlarmType::Nospace as i32,
        }
    }

    #[test]
    fn simple_is_compact_text() {
        assert_eq!(
            compact_text(&nospace(1052703702013223712)),
            "memberID:1052703702013223712 alarm:NOSPACE "
        );
        assert_eq!(compact_text(&nospace(0)), "alarm:NOSPACE ");
    }

    #[test]
    fn json_matches_etcd() {
        let resp = AlarmResponse {
            header: None,
            alarms: vec![nospace(1052703702013223712)],
        };
        assert_eq!(
            json_alarm(&resp),
            r#"{"alarms":[{"memberID":1052703702013223712,"alarm":1}]}"#
        );
        assert_eq!(json_alarm(&AlarmResponse::default()), "{}");
    }
}
