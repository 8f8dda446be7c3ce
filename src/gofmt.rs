//! Go's formatting and parsing rules, where etcd's users see them: flag
//! values (`strconv`, `time.ParseDuration`), `%q` quoting, `%g` floats,
//! `time.Duration.String()`, OS errors, go-humanize sizes, `encoding/json` strings and
//! tablewriter tables.
//! The server's config, etcdctl and the benchmark all match etcd byte for
//! byte, so there is one copy of each rule, here.

mod duration;
mod number;
mod os_error;
mod quote;
mod strconv;
mod table;

pub use duration::{format_duration, parse_duration, parse_duration_saturating};
pub use number::{format_g, humanize_bytes};
pub use os_error::os_error_text;
pub use quote::{json_string, quote, quote_char, scan_quoted, unquote};
pub use strconv::{parse_bool, parse_int, parse_uint, NumError, NumErrorKind};
pub use table::table;
