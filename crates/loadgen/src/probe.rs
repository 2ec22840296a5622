//! Reading a server's CPU time and resident memory from `/proc`.
//!
//! `/proc/PID/stat` counts CPU time in clock ticks (`getconf CLK_TCK`, almost always
//! 100), and includes the time of threads that have already exited, so it covers the
//! hub's blocking pool as well as its runtime threads. Processes the server's work
//! runs in besides its own (a PostgreSQL server's backends, issue 13) can be added to
//! its CPU time with [`ServerProbe::with_also`]; its memory stays the server's own.

use anyhow::{Context, Result, bail};
use std::process::Command;

/// A running server process whose CPU time and memory can be sampled.
#[derive(Debug, Clone)]
pub struct ServerProbe {
    pid: u32,
    /// Further processes whose CPU time counts as the server's.
    also: Vec<u32>,
    ticks_per_second: f64,
}

impl ServerProbe {
    /// Checks that the process exists and learns the clock tick rate.
    pub fn new(pid: u32) -> Result<ServerProbe> {
        let probe = ServerProbe {
            pid,
            also: Vec::new(),
            ticks_per_second: clock_ticks_per_second(),
        };
        probe
            .cpu_seconds()
            .with_context(|| format!("cannot read the CPU time of process {pid}"))?;
        Ok(probe)
    }

    /// Counts the CPU time of these processes as the server's too (each must be
    /// readable now, and still running when the window closes).
    pub fn with_also(mut self, pids: &[u32]) -> Result<ServerProbe> {
        for pid in pids {
            self.ticks_of(*pid)
                .with_context(|| format!("cannot read the CPU time of process {pid}"))?;
        }
        self.also = pids.to_vec();
        Ok(self)
    }

    /// User plus system CPU time the process (and those of [`ServerProbe::with_also`])
    /// has used so far, in seconds.
    pub fn cpu_seconds(&self) -> Result<f64> {
        let mut ticks = self.ticks_of(self.pid)?;
        for pid in &self.also {
            ticks += self.ticks_of(*pid)?;
        }
        Ok(ticks as f64 / self.ticks_per_second)
    }

    fn ticks_of(&self, pid: u32) -> Result<u64> {
        let path = format!("/proc/{pid}/stat");
        let text = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
        parse_stat_cpu_ticks(&text).with_context(|| format!("parsing {path}"))
    }

    /// The process's resident set size, in bytes.
    pub fn rss_bytes(&self) -> Result<u64> {
        let path = format!("/proc/{}/status", self.pid);
        let text = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
        parse_status_rss_bytes(&text).with_context(|| format!("parsing {path}"))
    }
}

/// `getconf CLK_TCK`, or Linux's usual 100 when `getconf` is missing.
fn clock_ticks_per_second() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|output| String::from_utf8(output.stdout).ok())
        .and_then(|text| text.trim().parse::<f64>().ok())
        .filter(|ticks| *ticks > 0.0)
        .unwrap_or(100.0)
}

/// `utime + stime` (fields 14 and 15) from the text of `/proc/PID/stat`. The command
/// name (field 2) is in parentheses and may itself hold spaces or parentheses, so the
/// fields are counted from the last `)`.
pub fn parse_stat_cpu_ticks(stat: &str) -> Result<u64> {
    let Some(close) = stat.rfind(')') else {
        bail!("no command name in stat line");
    };
    // After the name: field 3 (state) is index 0, so utime (14) is 11 and stime (15) 12.
    let fields: Vec<&str> = stat[close + 1..].split_whitespace().collect();
    let field = |index: usize| -> Result<u64> {
        fields
            .get(index)
            .context("stat line is too short")?
            .parse::<u64>()
            .context("stat field is not a number")
    };
    Ok(field(11)? + field(12)?)
}

/// `VmRSS` from the text of `/proc/PID/status`, in bytes.
pub fn parse_status_rss_bytes(status: &str) -> Result<u64> {
    let line = status
        .lines()
        .find(|line| line.starts_with("VmRSS:"))
        .context("no VmRSS line")?;
    let mut words = line["VmRSS:".len()..].split_whitespace();
    let kib: u64 = words
        .next()
        .context("empty VmRSS line")?
        .parse()
        .context("VmRSS is not a number")?;
    match words.next() {
        Some("kB") | None => Ok(kib * 1024),
        Some(unit) => bail!("unexpected VmRSS unit {unit:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check_stat(stat: &str, expected: Option<u64>) {
        assert_eq!(parse_stat_cpu_ticks(stat).ok(), expected, "{stat}");
    }

    #[test]
    fn stat_lines() {
        check_stat(
            "4242 (salam) S 1 4242 4242 0 -1 4194560 1234 0 0 0 150 25 0 0 20 0 3 0 100 0 0",
            Some(175),
        );
        // A command name with spaces and a parenthesis.
        check_stat(
            "7 (a b) c) R 1 7 7 0 -1 0 0 0 0 0 9 1 0 0 20 0 1 0 5 0 0",
            Some(10),
        );
        check_stat("7 (short) R 1 2", None);
        check_stat("garbage", None);
        check_stat("7 (x) R 1 7 7 0 -1 0 0 0 0 0 nine 1", None);
    }

    #[test]
    fn status_rss() {
        let status = "Name:\tsalam\nVmPeak:\t  9000 kB\nVmRSS:\t   12345 kB\nThreads:\t3\n";
        assert_eq!(parse_status_rss_bytes(status).ok(), Some(12345 * 1024));
        assert!(parse_status_rss_bytes("Name:\tsalam\n").is_err());
        assert!(parse_status_rss_bytes("VmRSS:\t12 MB\n").is_err());
    }

    #[test]
    fn own_process() {
        let probe = ServerProbe::new(std::process::id()).expect("own process is readable");
        assert!(probe.rss_bytes().expect("own rss") > 0);
        assert!(probe.cpu_seconds().expect("own cpu") >= 0.0);
    }

    #[test]
    fn also_counts_more_processes() {
        let own = std::process::id();
        // Burn some CPU so the sums differ from zero.
        let mut x = 0u64;
        while ServerProbe::new(own).unwrap().cpu_seconds().unwrap() < 0.02 {
            x = x.wrapping_add(std::hint::black_box(1));
        }
        let alone = ServerProbe::new(own).unwrap();
        let doubled = ServerProbe::new(own).unwrap().with_also(&[own]).unwrap();
        let (single, double) = (alone.cpu_seconds().unwrap(), doubled.cpu_seconds().unwrap());
        assert!(
            double >= 2.0 * single && double > single,
            "{single} {double} {x}"
        );
        // A process that does not exist is refused up front.
        assert!(
            ServerProbe::new(own)
                .unwrap()
                .with_also(&[u32::MAX])
                .is_err()
        );
    }
}
