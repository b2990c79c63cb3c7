//! The process's own figures, read from /proc (Linux; zeros elsewhere).

#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ProcessStats {
    pub rss_bytes: u64,
    pub cpu_seconds: f64,
    pub open_fds: u64,
    pub max_fds: u64,
    pub threads: u64,
}

/// Clock ticks per second of /proc/self/stat's times (USER_HZ, 100 on
/// every Linux architecture that matters).
const TICKS: f64 = 100.0;

pub fn read() -> ProcessStats {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    ProcessStats {
        rss_bytes: rss_bytes().unwrap_or(0),
        cpu_seconds: parse_cpu(&stat).unwrap_or(0.0),
        open_fds: std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count() as u64),
        max_fds: std::fs::read_to_string("/proc/self/limits")
            .ok()
            .and_then(|l| parse_max_fds(&l))
            .unwrap_or(0),
        threads: parse_field(&stat, 20).unwrap_or(0.0) as u64,
    }
}

pub fn rss_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}

/// Field `n` (1-based, as proc(5) numbers them) of /proc/self/stat; the
/// command name (field 2) may hold spaces, so counting starts after it.
fn parse_field(stat: &str, n: usize) -> Option<f64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(n - 3)?.parse().ok()
}

fn parse_cpu(stat: &str) -> Option<f64> {
    Some((parse_field(stat, 14)? + parse_field(stat, 15)?) / TICKS)
}

fn parse_max_fds(limits: &str) -> Option<u64> {
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_are_found_after_a_name_with_spaces() {
        let stat = "123 (tokio runtime) S 1 123 123 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 7 0 100 1000 50";
        assert_eq!(parse_cpu(stat), Some(3.0));
        assert_eq!(parse_field(stat, 20), Some(7.0));
        let limits = "Limit                     Soft Limit           Hard Limit           Units\nMax open files            20000                20000                files\n";
        assert_eq!(parse_max_fds(limits), Some(20000));
    }

    #[test]
    fn this_process_has_figures() {
        let p = read();
        if cfg!(target_os = "linux") {
            assert!(
                p.rss_bytes > 0 && p.open_fds > 0 && p.threads > 0 && p.max_fds > 0,
                "{p:?}"
            );
        }
    }
}
