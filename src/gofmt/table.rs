//! Tables as etcd's tools print them: olekukonko/tablewriter configured as
//! etcdctl and etcdutl configure it.

use std::fmt::Write as _;

/// olekukonko/tablewriter as etcd's tools configure it: upper-case headers
/// centred, cells right-aligned, `+---+` borders.
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let titles: Vec<String> = header.iter().map(|h| h.to_uppercase()).collect();
    let mut widths: Vec<usize> = titles.iter().map(|t| t.chars().count()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let border = widths.iter().fold(String::from("+"), |mut acc, w| {
        acc.push_str(&"-".repeat(w + 2));
        acc.push('+');
        acc
    });
    let mut out = format!("{border}\n|");
    for (title, w) in titles.iter().zip(&widths) {
        let gap = w - title.chars().count();
        let left = gap / 2;
        let _ = write!(
            out,
            " {}{title}{} |",
            " ".repeat(left),
            " ".repeat(gap - left)
        );
    }
    let _ = write!(out, "\n{border}\n");
    for row in rows {
        out.push('|');
        for (cell, w) in row.iter().zip(&widths) {
            let _ = write!(out, " {cell:>w$} |");
        }
        out.push('\n');
    }
    let _ = writeln!(out, "{border}");
    out
}
