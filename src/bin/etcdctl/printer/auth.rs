//! Output of `auth status`, `role *` and `user *`, as etcd 3.5's printers
//! write them: simple text, json and protobuf for every response; fields
//! only where etcd's fields printer has the method (not for `user get`,
//! `user list` and `auth status`); no table.

use std::fmt::Write as _;

use prost::Message;

use rsetcd::client::prefix_end;
use rsetcd::gofmt;
use rsetcd::proto::authpb::{permission, Permission};
use rsetcd::proto::etcdserverpb::{
    AuthRoleGetResponse, AuthRoleListResponse, AuthStatusResponse, AuthUserGetResponse,
    AuthUserListResponse, ResponseHeader,
};

use super::{fields_header, json_header, json_line, write_stdout, Format, JsonObject, Printer};
use crate::exit::CtlResult;

/// A response whose non-simple forms are its header alone (the write
/// commands: add, delete, grant, revoke, passwd).
pub struct HeaderOnly<'a, R> {
    pub response: &'a R,
    pub header: Option<&'a ResponseHeader>,
}

impl Printer {
    /// Prints one auth response: `simple` is etcdctl's text; `json_body`
    /// adds the response's own fields after the header; `fields` is `None`
    /// where etcd's fields printer lacks the method.
    fn auth_response<R: Message>(
        &self,
        response: &R,
        header: Option<&ResponseHeader>,
        simple: Vec<u8>,
        json_body: impl FnOnce(&mut JsonObject),
        fields: Option<String>,
    ) -> CtlResult {
        let out = match self.format {
            Format::Simple => simple,
            Format::Json => {
                let mut o = JsonObject::new();
                json_header(&mut o, header);
                json_body(&mut o);
                json_line(&o.finish())
            }
            Format::Fields => match fields {
                Some(body) => {
                    let mut s = String::new();
                    fields_header(&mut s, header);
                    s.push_str(&body);
                    s.into_bytes()
                }
                None => return Err(self.unsupported()),
            },
            Format::Protobuf => response.encode_to_vec(),
            Format::Table => return Err(self.unsupported()),
        };
        write_stdout(&out)
    }

    /// The write commands: `simple` text, otherwise the header.
    pub fn auth_change<R: Message>(&self, change: HeaderOnly<'_, R>, simple: &[u8]) -> CtlResult {
        self.auth_response(
            change.response,
            change.header,
            simple.to_vec(),
            |_| {},
            Some(String::new()),
        )
    }

    pub fn auth_status(&self, resp: &AuthStatusResponse) -> CtlResult {
        let simple = format!(
            "Authentication Status: {}\nAuthRevision: {}\n",
            resp.enabled, resp.auth_revision
        );
        self.auth_response(
            resp,
            resp.header.as_ref(),
            simple.into_bytes(),
            |o| {
                o.flag("enabled", resp.enabled);
                o.num("authRevision", resp.auth_revision);
            },
            None,
        )
    }

    pub fn role_get(&self, role: &str, resp: &AuthRoleGetResponse) -> CtlResult {
        let mut fields = String::new();
        for perm in &resp.perm {
            let _ = writeln!(fields, "\"PermType\" :  {}", perm_type_name(perm.perm_type));
            let _ = writeln!(fields, "\"Key\" : {}", gofmt::quote(&perm.key));
            let _ = writeln!(fields, "\"RangeEnd\" : {}", gofmt::quote(&perm.range_end));
        }
        self.auth_response(
            resp,
            resp.header.as_ref(),
            simple_role(role, &resp.perm),
            |o| {
                if !resp.perm.is_empty() {
                    let items: Vec<String> = resp.perm.iter().map(json_permission).collect();
                    o.raw("perm", format!("[{}]", items.join(",")));
                }
            },
            Some(fields),
        )
    }

    pub fn role_list(&self, resp: &AuthRoleListResponse) -> CtlResult {
        let mut fields = String::from("\"Roles\" :");
        for role in &resp.roles {
            let _ = write!(fields, " {}", gofmt::quote(role.as_bytes()));
        }
        fields.push('\n');
        self.auth_response(
            resp,
            resp.header.as_ref(),
            lines(&resp.roles),
            |o| json_strings(o, "roles", &resp.roles),
            Some(fields),
        )
    }

    pub fn user_get(&self, user: &str, resp: &AuthUserGetResponse) -> CtlResult {
        let mut simple = format!("User: {user}\nRoles:");
        for role in &resp.roles {
            let _ = write!(simple, " {role}");
        }
        simple.push('\n');
        self.auth_response(
            resp,
            resp.header.as_ref(),
            simple.into_bytes(),
            |o| json_strings(o, "roles", &resp.roles),
            None,
        )
    }

    pub fn user_list(&self, resp: &AuthUserListResponse) -> CtlResult {
        self.auth_response(
            resp,
            resp.header.as_ref(),
            lines(&resp.users),
            |o| json_strings(o, "users", &resp.users),
            None,
        )
    }
}

/// `role get` as text: the read permissions, then the write ones.
fn simple_role(role: &str, perms: &[Permission]) -> Vec<u8> {
    use permission::Type;
    let mut out = format!("Role {role}\nKV Read:\n").into_bytes();
    let reads =
        |p: &&Permission| p.perm_type == Type::Read as i32 || p.perm_type == Type::Readwrite as i32;
    let writes = |p: &&Permission| {
        p.perm_type == Type::Write as i32 || p.perm_type == Type::Readwrite as i32
    };
    for perm in perms.iter().filter(reads) {
        simple_permission(&mut out, perm);
    }
    out.extend_from_slice(b"KV Write:\n");
    for perm in perms.iter().filter(writes) {
        simple_permission(&mut out, perm);
    }
    out
}

/// One permission: a key, `[key, end)`, or `[key, <open ended>`, with
/// `(prefix key)` when the range is exactly the key's prefix.
fn simple_permission(out: &mut Vec<u8>, perm: &Permission) {
    out.push(b'\t');
    if perm.range_end.is_empty() {
        out.extend_from_slice(&perm.key);
        out.push(b'\n');
        return;
    }
    out.push(b'[');
    out.extend_from_slice(&perm.key);
    out.extend_from_slice(b", ");
    if perm.range_end != [0] {
        out.extend_from_slice(&perm.range_end);
        out.push(b')');
    } else {
        out.extend_from_slice(b"<open ended>");
    }
    if prefix_end(&perm.key) == perm.range_end {
        out.extend_from_slice(b" (prefix ");
        out.extend_from_slice(&perm.key);
        out.push(b')');
    }
    out.push(b'\n');
}

/// Go's `Permission_Type.String()`.
fn perm_type_name(value: i32) -> String {
    match permission::Type::try_from(value) {
        Ok(known) => known.as_str_name().to_string(),
        Err(_) => value.to_string(),
    }
}

fn json_permission(perm: &Permission) -> String {
    let mut o = JsonObject::new();
    o.num("permType", perm.perm_type);
    o.bytes("key", &perm.key);
    o.bytes("range_end", &perm.range_end);
    o.finish()
}

/// An `omitempty` []string field.
fn json_strings(o: &mut JsonObject, name: &str, values: &[String]) {
    if !values.is_empty() {
        let items: Vec<String> = values.iter().map(|v| gofmt::json_string(v)).collect();
        o.raw(name, format!("[{}]", items.join(",")));
    }
}

fn lines(values: &[String]) -> Vec<u8> {
    let mut out = String::new();
    for value in values {
        let _ = writeln!(out, "{value}");
    }
    out.into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn perm(kind: permission::Type, key: &[u8], end: &[u8]) -> Permission {
        Permission {
            perm_type: kind as i32,
            key: key.to_vec(),
            range_end: end.to_vec(),
        }
    }

    #[test]
    fn role_text_matches_etcd() {
        use permission::Type;
        let perms = [
            perm(Type::Read, b"foo", b""),
            perm(Type::Readwrite, b"pre/", b"pre0"),
            perm(Type::Write, b"a", b"c"),
            perm(Type::Write, b"z", b"\0"),
        ];
        assert_eq!(
            String::from_utf8(simple_role("r1", &perms)).unwrap(),
            "Role r1\nKV Read:\n\tfoo\n\t[pre/, pre0) (prefix pre/)\nKV Write:\n\t[pre/, pre0) (prefix pre/)\n\t[a, c)\n\t[z, <open ended>\n"
        );
    }

    #[test]
    fn auth_status_json_omits_false() {
        let mut o = JsonObject::new();
        let resp = AuthStatusResponse {
            header: None,
            enabled: false,
            auth_revision: 4,
        };
        json_header(&mut o, resp.header.as_ref());
        o.flag("enabled", resp.enabled);
        o.num("authRevision", resp.auth_revision);
        assert_eq!(o.finish(), r#"{"authRevision":4}"#);
    }

    #[test]
    fn permission_json_omits_zero_fields() {
        assert_eq!(
            json_permission(&perm(permission::Type::Read, b"foo", b"")),
            r#"{"key":"Zm9v"}"#
        );
        assert_eq!(
            json_permission(&perm(permission::Type::Readwrite, b"a", b"b")),
            r#"{"permType":2,"key":"YQ==","range_end":"Yg=="}"#
        );
    }
}
