//! A throwaway PostgreSQL cluster for one test: `initdb` into a temporary
//! directory, `pg_ctl start` listening on a Unix socket in it only (no TCP
//! port to collide with), trust authentication for the user `govgate`,
//! stopped when dropped. PostgreSQL refuses to run as root: when the tests
//! do, the server runs as `nobody` (through `runuser`), owning its files.
//!
//! Needs Debian's `postgresql` package (its binaries are looked for in
//! `/usr/lib/postgresql/<version>/bin`, else on `PATH`).

use std::path::{Path, PathBuf};
use std::process::Command;

/// The socket's port number (names the socket file; nothing listens on TCP).
const PORT: u16 = 5432;
/// The database user the tests connect as.
pub const USER: &str = "govgate";

pub struct Postgres {
    dir: tempfile::TempDir,
    bin: PathBuf,
    /// `nobody` when the tests run as root.
    run_as: Option<&'static str>,
}

/// The directory of `initdb`: the newest under /usr/lib/postgresql, else
/// the one on `PATH`.
fn bin_dir() -> PathBuf {
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let version = entry.file_name().to_str()?.parse().ok()?;
            let bin = entry.path().join("bin");
            bin.join("initdb").exists().then_some((version, bin))
        })
        .collect();
    versions.sort();
    if let Some((_, bin)) = versions.pop() {
        return bin;
    }
    let found = Command::new("sh")
        .args(["-c", "command -v initdb"])
        .output()
        .expect("sh");
    let path = String::from_utf8_lossy(&found.stdout).trim().to_owned();
    assert!(
        !path.is_empty(),
        "PostgreSQL not found: install Debian's postgresql package"
    );
    Path::new(&path).parent().unwrap().to_owned()
}

fn is_root() -> bool {
    let id = Command::new("id").arg("-u").output().expect("id -u");
    String::from_utf8_lossy(&id.stdout).trim() == "0"
}

impl Postgres {
    /// Creates and starts a cluster (blocking, a few seconds).
    pub fn start() -> Postgres {
        let dir = tempfile::Builder::new()
            .prefix("govgate-pg")
            .tempdir()
            .unwrap();
        let run_as = is_root().then_some("nobody");
        if let Some(user) = run_as {
            // The server's user must reach and own its directory.
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
            let owned = Command::new("chown")
                .arg(user)
                .arg(dir.path())
                .status()
                .unwrap();
            assert!(owned.success(), "chown {user}");
        }
        let postgres = Postgres {
            dir,
            bin: bin_dir(),
            run_as,
        };
        postgres.run(
            "initdb",
            &[
                "-D",
                &postgres.data().display().to_string(),
                "-U",
                USER,
                "--auth=trust",
                "--no-sync",
                "-E",
                "UTF8",
            ],
        );
        postgres.pg_ctl_start();
        postgres
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// The socket directory.
    fn socket_dir(&self) -> &Path {
        self.dir.path()
    }

    /// Writes [`Postgres::url`] to `dir/cluster.url`, for `[cluster] url =
    /// { file = ... }`; its path.
    pub fn url_file(&self, dir: &Path) -> std::path::PathBuf {
        let path = dir.join("cluster.url");
        std::fs::write(&path, format!("{}\n", self.url())).unwrap();
        path
    }

    /// A connection string for tokio-postgres and for `[cluster] url`.
    pub fn url(&self) -> String {
        format!(
            "host={} port={PORT} user={USER} dbname=postgres",
            self.socket_dir().display()
        )
    }

    /// `program` of PostgreSQL's, as the server's user.
    fn command(&self, program: &str) -> Command {
        let binary = self.bin.join(program);
        let mut command = match self.run_as {
            Some(user) => {
                let mut command = Command::new("runuser");
                command.args(["-u", user, "--"]).arg(&binary);
                command
            }
            None => Command::new(&binary),
        };
        command.current_dir(self.dir.path());
        command
    }

    fn run(&self, program: &str, args: &[&str]) {
        let output = self
            .command(program)
            .args(args)
            .output()
            .unwrap_or_else(|err| panic!("{program}: {err}"));
        assert!(
            output.status.success(),
            "{program} {args:?}: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }

    fn pg_ctl_start(&self) {
        let options = format!(
            "-c listen_addresses='' -k {} -p {PORT} -c fsync=off",
            self.socket_dir().display()
        );
        self.run(
            "pg_ctl",
            &[
                "-D",
                &self.data().display().to_string(),
                "-l",
                &self.dir.path().join("server.log").display().to_string(),
                "-o",
                &options,
                "-w",
                "start",
            ],
        );
    }

    /// Starts the server again after [`Postgres::stop`].
    pub fn restart(&self) {
        self.pg_ctl_start();
    }

    /// Stops the server (fast shutdown: sessions are ended).
    pub fn stop(&self) {
        self.run(
            "pg_ctl",
            &[
                "-D",
                &self.data().display().to_string(),
                "-m",
                "fast",
                "-w",
                "stop",
            ],
        );
    }

    /// A session for the test's own queries.
    pub async fn client(&self) -> tokio_postgres::Client {
        let (client, connection) = tokio_postgres::connect(&self.url(), tokio_postgres::NoTls)
            .await
            .expect("connect to the test cluster");
        tokio::spawn(connection);
        client
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let data = self.data().display().to_string();
        let _ = self
            .command("pg_ctl")
            .args(["-D", &data, "-m", "immediate", "stop"])
            .output();
    }
}
