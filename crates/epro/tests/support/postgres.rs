//! A private PostgreSQL server in a temporary directory, which a test may
//! stop and start again without touching the shared one.
//!
//! It runs Debian's binaries from `TEST_EPRO_PG_BIN` (set by `.ci/services`)
//! on a free port of 127.0.0.1 with trust authentication. PostgreSQL refuses
//! to run as root, so as root the commands run as the `postgres` user.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;

use tempfile::TempDir;

/// A running private server; stopped and deleted on drop.
pub struct PrivatePostgres {
    bin: PathBuf,
    directory: TempDir,
    port: u16,
}

impl PrivatePostgres {
    /// Creates and starts a server, or returns `None` (after printing why)
    /// when `TEST_EPRO_PG_BIN` is not set.
    pub fn start() -> Option<PrivatePostgres> {
        let Some(bin) = std::env::var_os("TEST_EPRO_PG_BIN") else {
            eprintln!("skipped: TEST_EPRO_PG_BIN is not set (run through .ci/run)");
            return None;
        };
        let directory = tempfile::tempdir().expect("create the server's directory");
        if is_root() {
            let status = Command::new("chown").arg("postgres").arg(directory.path()).status().unwrap();
            assert!(status.success(), "chown postgres {} failed", directory.path().display());
        }
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let server = PrivatePostgres { bin: PathBuf::from(bin), directory, port };

        let data = server.data();
        server.run("initdb", &["-D", &data, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-instructions"]);
        server.start_again();
        Some(server)
    }

    /// `postgres://postgres@127.0.0.1:PORT/postgres`.
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Stops the server the fast way: open connections are closed and
    /// in-flight transactions roll back, as in a database restart.
    pub fn stop(&self) {
        self.run("pg_ctl", &["-D", &self.data(), "-m", "fast", "-w", "stop"]);
    }

    /// Starts the (stopped) server on the same port and waits until it
    /// accepts connections.
    pub fn start_again(&self) {
        let options = format!(
            "-c listen_addresses=127.0.0.1 -p {} -k {} -c fsync=on -c max_connections=200",
            self.port,
            self.directory.path().display()
        );
        let log = self.directory.path().join("server.log").display().to_string();
        self.run("pg_ctl", &["-D", &self.data(), "-o", &options, "-l", &log, "-w", "start"]);
    }

    fn data(&self) -> String {
        self.directory.path().join("data").display().to_string()
    }

    fn run(&self, program: &str, args: &[&str]) {
        let path = self.bin.join(program);
        let mut command = if is_root() {
            let mut command = Command::new("runuser");
            command.args(["-u", "postgres", "--"]).arg(&path);
            command
        } else {
            Command::new(&path)
        };
        let output = command.args(args).current_dir(Path::new("/")).output().expect("run a PostgreSQL program");
        assert!(
            output.status.success(),
            "{program} {args:?} failed: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        let path = self.bin.join("pg_ctl");
        let data = self.data();
        let args = ["-D", data.as_str(), "-m", "immediate", "-w", "stop"];
        let _ = if is_root() {
            Command::new("runuser").args(["-u", "postgres", "--"]).arg(&path).args(args).output()
        } else {
            Command::new(&path).args(args).output()
        };
    }
}

fn is_root() -> bool {
    Command::new("id").arg("-u").output().is_ok_and(|output| output.stdout.trim_ascii() == b"0")
}
