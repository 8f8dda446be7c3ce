//! Go's `text/tabwriter` in the one configuration etcdctl's help uses
//! (`minwidth 0, tabwidth 8, padding 1, padchar '\t'`): tab-separated cells
//! in consecutive lines form columns, each padded with tabs to a common
//! width rounded up to a tab stop. The help text is byte-identical only if
//! this matches Go's column-block algorithm.

const TAB_WIDTH: usize = 8;
const PADDING: usize = 1;

/// Aligns `text` as Go's tabwriter would and returns the result.
pub fn align(text: &str) -> String {
    // Each line's cells; the last cell of a line is not part of a column.
    let lines: Vec<Vec<&str>> = text.split('\n').map(|l| l.split('\t').collect()).collect();
    let mut out = String::with_capacity(text.len() + 64);
    let mut widths = Vec::new();
    format_block(&lines, 0, lines.len(), &mut widths, &mut out);
    // `split` yields a final empty "line" after a trailing newline; drop the
    // newline that writing it would add.
    if out.ends_with('\n') && !text.ends_with('\n') {
        out.pop();
    } else if !out.ends_with('\n') && text.ends_with('\n') {
        out.push('\n');
    }
    out
}

fn format_block(
    lines: &[Vec<&str>],
    mut line0: usize,
    line1: usize,
    widths: &mut Vec<usize>,
    out: &mut String,
) {
    let column = widths.len();
    let mut this = line0;
    while this < line1 {
        if column + 1 >= lines[this].len() {
            this += 1;
            continue;
        }
        // A column block starts here: print the lines before it.
        write_lines(lines, line0, this, widths, out);
        line0 = this;
        let mut width = 0;
        while this < line1 && column + 1 < lines[this].len() {
            width = width.max(lines[this][column].chars().count() + PADDING);
            this += 1;
        }
        widths.push(width);
        format_block(lines, line0, this, widths, out);
        widths.pop();
        line0 = this;
    }
    write_lines(lines, line0, line1, widths, out);
}

fn write_lines(lines: &[Vec<&str>], from: usize, to: usize, widths: &[usize], out: &mut String) {
    for (index, line) in lines.iter().enumerate().take(to).skip(from) {
        for (j, cell) in line.iter().enumerate() {
            out.push_str(cell);
            if j + 1 < line.len() && j < widths.len() {
                let cell_width = widths[j].div_ceil(TAB_WIDTH) * TAB_WIDTH;
                let padding = cell_width - cell.chars().count();
                for _ in 0..padding.div_ceil(TAB_WIDTH) {
                    out.push('\t');
                }
            }
        }
        if index + 1 < lines.len() {
            out.push('\n');
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pads_columns_to_tab_stops() {
        let text =
            "OPTIONS:\n  -h, --help[=false]\thelp\n      --ignore-lease[=false]\tlease\n\nX\n";
        // Widest cell 27 + padding 1 = 28, rounded to 32: `-h` (20) needs 2 tabs.
        assert_eq!(
            align(text),
            "OPTIONS:\n  -h, --help[=false]\t\thelp\n      --ignore-lease[=false]\tlease\n\nX\n"
        );
    }

    #[test]
    fn leading_tab_stays_one_tab() {
        assert_eq!(align("NAME:\n\tput - x\n\n"), "NAME:\n\tput - x\n\n");
    }
}
