//! Human-readable figures shared by the front ends.

use std::time::Duration;

/// A compact age: `45s`, `12m`, `3h`, `5d`.
pub fn age(secs: u64) -> String {
    match secs {
        s if s < 60 => format!("{s}s"),
        s if s < 3600 => format!("{}m", s / 60),
        s if s < 86_400 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86_400),
    }
}

/// Bytes in binary units with one decimal: `512 B`, `1.5 KiB`, `20.0 MiB`.
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut v = n as f64 / 1024.0;
    let mut unit = UNITS[0];
    for u in &UNITS[1..] {
        if v < 1024.0 {
            break;
        }
        v /= 1024.0;
        unit = u;
    }
    format!("{v:.1} {unit}")
}

/// A duration as `1.2s`, `3m04s` or `1h02m`.
pub fn duration(d: Duration) -> String {
    let s = d.as_secs();
    if s < 60 {
        format!("{:.1}s", d.as_secs_f64())
    } else if s < 3600 {
        format!("{}m{:02}s", s / 60, s % 60)
    } else {
        format!("{}h{:02}m", s / 3600, (s % 3600) / 60)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats() {
        assert_eq!(age(59), "59s");
        assert_eq!(age(3600 * 5), "5h");
        assert_eq!(bytes(1023), "1023 B");
        assert_eq!(bytes(1536), "1.5 KiB");
        assert_eq!(bytes(20 * 1024 * 1024), "20.0 MiB");
        assert_eq!(duration(Duration::from_millis(1234)), "1.2s");
        assert_eq!(duration(Duration::from_secs(184)), "3m04s");
    }
}

/// An argument vector as a line an operator can paste into a POSIX shell: words with
/// anything special in single quotes; control characters made visible.
pub fn shell_words(argv: &[String]) -> String {
    argv.iter()
        .map(|a| {
            let a = crate::sanitize::escape_str(a);
            let plain = !a.is_empty()
                && a.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_./:=@,+%".contains(c));
            if plain {
                a
            } else {
                format!("'{}'", a.replace('\'', "'\\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod shell_words_tests {
    #[test]
    fn quotes_what_a_shell_would_split_or_expand() {
        let v = |xs: &[&str]| xs.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            super::shell_words(&v(&["tar", "--file=-", "a b", "it's", "$x", ""])),
            "tar --file=- 'a b' 'it'\\''s' '$x' ''"
        );
    }
}

/// Progress against an estimate (exec-tar against the guest's `df`), marked `~`: the
/// percentage and, given a rate, the time left; past the estimate it says so instead of
/// counting beyond 100%.
pub fn against_estimate(bytes: u64, estimate: u64, rate: Option<u64>) -> String {
    if estimate == 0 {
        return String::new();
    }
    if bytes > estimate {
        return format!("past the ~{} estimate", self::bytes(estimate));
    }
    let pct = (u128::from(bytes) * 100 / u128::from(estimate)) as u64;
    let mut s = format!("~{pct}% of ~{}", self::bytes(estimate));
    if let Some(r) = rate.filter(|r| *r > 0) {
        let left = (estimate - bytes).div_ceil(r);
        s.push_str(&format!(" · ETA ~{}", duration(Duration::from_secs(left))));
    }
    s
}

/// Docker's classic builder's `Step 3/4 : USER node`, as (3, 4).
pub fn docker_step(line: &str) -> Option<(u32, u32)> {
    let rest = line.trim_start().strip_prefix("Step ")?;
    let (n, rest) = rest.split_once('/')?;
    let m: String = rest.chars().take_while(char::is_ascii_digit).collect();
    let (n, m) = (n.trim().parse().ok()?, m.parse().ok()?);
    (n <= m && m > 0).then_some((n, m))
}

/// `stalled · no bytes for 12s`, as every front end says it.
pub fn stalled(idle_ms: u64) -> String {
    format!("stalled · no bytes for {}s", idle_ms / 1000)
}

#[cfg(test)]
mod estimate_tests {
    use super::*;

    #[test]
    fn progress_against_an_estimate_is_marked_and_never_passes_it() {
        assert_eq!(
            against_estimate(1 << 20, 4 << 20, Some(1 << 20)),
            "~25% of ~4.0 MiB · ETA ~3.0s"
        );
        assert_eq!(
            against_estimate(1 << 20, 4 << 20, Some(0)),
            "~25% of ~4.0 MiB"
        );
        assert_eq!(
            against_estimate(5 << 20, 4 << 20, Some(1 << 20)),
            "past the ~4.0 MiB estimate"
        );
        assert_eq!(stalled(12_400), "stalled · no bytes for 12s");
        assert_eq!(docker_step("Step 3/4 : USER node"), Some((3, 4)));
        assert_eq!(docker_step("build| Step 3/4"), None);
        assert_eq!(docker_step("Step 5/4 : X"), None);
    }
}
