//! The Prometheus text exposition format: `# HELP`, `# TYPE`, and `name{label="value"} n`.

use std::fmt::Write;

pub(crate) fn header(out: &mut String, name: &str, help: &str, kind: &str) {
    let _ = writeln!(out, "# HELP {name} {}", escape(help, false));
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

pub(crate) fn sample(
    out: &mut String,
    name: &str,
    labels: &[&str],
    values: &[&str],
    value: String,
) {
    out.push_str(name);
    if !labels.is_empty() {
        out.push('{');
        for (i, (label, text)) in labels.iter().zip(values).enumerate() {
            if i > 0 {
                out.push(',');
            }
            let _ = write!(out, "{label}=\"{}\"", escape(text, true));
        }
        out.push('}');
    }
    let _ = writeln!(out, " {value}");
}

/// Backslash and newline always; double quotes inside label values.
fn escape(text: &str, quotes: bool) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\\' => escaped.push_str("\\\\"),
            '\n' => escaped.push_str("\\n"),
            '"' if quotes => escaped.push_str("\\\""),
            c => escaped.push(c),
        }
    }
    escaped
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_and_escapes() {
        let mut out = String::new();
        header(&mut out, "x_total", "Things\\done\nnow.", "counter");
        sample(
            &mut out,
            "x_total",
            &["a", "b"],
            &["1", "q\"uote"],
            "7".into(),
        );
        sample(&mut out, "y", &[], &[], "0".into());
        assert_eq!(
            out,
            "# HELP x_total Things\\\\done\\nnow.\n# TYPE x_total counter\nx_total{a=\"1\",b=\"q\\\"uote\"} 7\ny 0\n"
        );
    }
}
