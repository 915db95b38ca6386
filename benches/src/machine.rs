//! What machine the figures come from: CPU model, cores, OS, load.

/// The CPU model (`/proc/cpuinfo` on Linux, `sysctl` on macOS), or `unknown`.
pub fn cpu_model() -> String {
    if let Ok(info) = std::fs::read_to_string("/proc/cpuinfo") {
        for line in info.lines() {
            if let Some((key, value)) = line.split_once(':') {
                let key = key.trim();
                if key == "model name" || key == "Model" || key == "cpu model" {
                    return value.trim().to_string();
                }
            }
        }
    }
    if let Ok(out) = std::process::Command::new("sysctl")
        .args(["-n", "machdep.cpu.brand_string"])
        .output()
    {
        let s = String::from_utf8_lossy(&out.stdout).trim().to_string();
        if !s.is_empty() {
            return s;
        }
    }
    "unknown".to_string()
}

/// Cores available to this process.
pub fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// The 1-minute load average (`/proc/loadavg`), when the system tells it.
pub fn load_average() -> Option<f64> {
    let s = std::fs::read_to_string("/proc/loadavg").ok()?;
    s.split_whitespace().next()?.parse().ok()
}

/// One line: CPU, cores, OS and architecture.
pub fn describe() -> String {
    format!(
        "{}, {} cores, {}/{}",
        cpu_model(),
        cores(),
        std::env::consts::OS,
        std::env::consts::ARCH
    )
}
