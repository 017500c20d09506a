//! Where `govgate export` writes a bundle until it is complete: a sibling
//! of `--out` named `<out>.partial`, holding a marker file and the bundle
//! being written. Only when every file is written and synced is the bundle
//! renamed to `--out` (one `rename`, atomic on POSIX file systems), so an
//! export killed midway never leaves `--out` looking complete. The next
//! export to the same `--out` removes what an interrupted one left.
//!
//! Two offline exports of one ledger never run at once (the first holds the
//! store's lock until its bundle is renamed), and a gateway runs one online
//! export at a time, so a partial directory found at the start is a dead
//! export's, unless two commands were given the same `--out` at once.

use anyhow::Context;
use std::fs::File;
use std::path::{Path, PathBuf};

/// The file that marks a directory as an unfinished export.
pub(super) const MARKER: &str = "GOVGATE-EXPORT-INCOMPLETE";
/// The suffix of the directory an export is written in.
const SUFFIX: &str = ".partial";

/// An export being written (see the module docs).
pub(super) struct Staging {
    /// `<out>.partial`.
    dir: PathBuf,
    /// `<out>.partial/bundle`: the bundle, created by the exporter.
    bundle: PathBuf,
    /// Where the finished bundle goes.
    out: PathBuf,
}

/// The directory an export to `out` is written in before it is complete.
pub(super) fn partial_dir(out: &Path) -> Option<PathBuf> {
    let name = out.file_name()?;
    let mut partial = name.to_os_string();
    partial.push(SUFFIX);
    Some(out.with_file_name(partial))
}

impl Staging {
    /// Prepares an export to `out`, which must not exist yet: removes the
    /// partial output of an interrupted export to it (saying so on stderr)
    /// and creates `<out>.partial` with its marker.
    pub(super) fn begin(out: &Path) -> anyhow::Result<Staging> {
        let dir = partial_dir(out).ok_or_else(|| {
            super::usage(format!(
                "--out {}: name a new directory to write the bundle into",
                out.display()
            ))
        })?;
        if out.exists() {
            return Err(super::usage(format!(
                "--out {}: already exists; the bundle goes into a new directory",
                out.display()
            )));
        }
        if dir.exists() {
            remove_interrupted(&dir, out)?;
        }
        std::fs::create_dir(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let marker = dir.join(MARKER);
        std::fs::write(
            &marker,
            format!(
                "An export to {} has not finished (or was interrupted): this is not a bundle.\n\
                 The next `govgate export --out {}` removes this directory.\n",
                out.display(),
                out.display()
            ),
        )
        .with_context(|| format!("writing {}", marker.display()))?;
        Ok(Staging {
            bundle: dir.join("bundle"),
            dir,
            out: out.to_path_buf(),
        })
    }

    /// The directory the exporter creates and fills.
    pub(super) fn bundle(&self) -> &Path {
        &self.bundle
    }

    /// The bundle is complete: its files are synced, it is renamed to
    /// `--out`, and the partial directory is removed.
    pub(super) fn complete(self) -> anyhow::Result<()> {
        sync_dir_files(&self.bundle)
            .with_context(|| format!("syncing {}", self.bundle.display()))?;
        // rename(2) would replace an empty directory created meanwhile.
        if self.out.exists() {
            return Err(anyhow::anyhow!(
                "{} appeared while exporting; the bundle is left in {}",
                self.out.display(),
                self.bundle.display()
            ));
        }
        std::fs::rename(&self.bundle, &self.out).with_context(|| {
            format!(
                "renaming {} to {}",
                self.bundle.display(),
                self.out.display()
            )
        })?;
        if let Some(parent) = self.out.parent() {
            // The rename is durable once the parent directory is.
            let parent = if parent.as_os_str().is_empty() {
                Path::new(".")
            } else {
                parent
            };
            let _ = File::open(parent).and_then(|dir| dir.sync_all());
        }
        std::fs::remove_dir_all(&self.dir)
            .with_context(|| format!("removing {}", self.dir.display()))
    }

    /// Completes the bundle if `written` is `Ok`, else abandons it.
    pub(super) fn settle<T, E: From<anyhow::Error>>(self, written: Result<T, E>) -> Result<T, E> {
        match written {
            Ok(value) => {
                self.complete()?;
                Ok(value)
            }
            Err(err) => {
                self.abandon();
                Err(err)
            }
        }
    }

    /// The export failed: what it wrote goes.
    pub(super) fn abandon(self) {
        if let Err(err) = std::fs::remove_dir_all(&self.dir) {
            eprintln!(
                "govgate: warning: cannot remove the partial export {}: {err}",
                self.dir.display()
            );
        }
    }
}

/// Removes `dir`, the partial output of an interrupted export to `out`,
/// if it is one (it holds the marker).
fn remove_interrupted(dir: &Path, out: &Path) -> anyhow::Result<()> {
    if !dir.join(MARKER).is_file() {
        return Err(super::usage(format!(
            "{} exists and is not an interrupted export of govgate's (no {MARKER} in it); \
             move it away or choose another --out",
            dir.display()
        )));
    }
    // Not resumed: the log may have grown or the options changed since,
    // and a bundle is cheap to write again next to a verification of it.
    eprintln!(
        "govgate: notice: removing {}, left by an export to {} that did not finish; \
         exporting again from the start",
        dir.display(),
        out.display()
    );
    std::fs::remove_dir_all(dir).with_context(|| format!("removing {}", dir.display()))
}

/// Syncs every file in `dir` and its subdirectories (a chunked bundle's
/// `chunks/A/`), then each directory.
fn sync_dir_files(dir: &Path) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let kind = entry.file_type()?;
        if kind.is_file() {
            File::open(entry.path())?.sync_all()?;
        } else if kind.is_dir() {
            sync_dir_files(&entry.path())?;
        }
    }
    File::open(dir)?.sync_all()
}

/// Why `dir`, given to `verify --bundle`, is not a bundle to verify: it is
/// an unfinished export, or inside one, or the `--out` of an export that
/// did not finish. `None` when none of these.
pub(super) fn unfinished(dir: &Path) -> Option<String> {
    let inside = dir
        .parent()
        .is_some_and(|parent| parent.join(MARKER).is_file());
    if dir.join(MARKER).is_file() || inside {
        return Some(format!(
            "{} is an export that did not finish (see its {MARKER} file), not a bundle: \
             export again",
            dir.display()
        ));
    }
    let partial = partial_dir(dir)?;
    (!dir.exists() && partial.join(MARKER).is_file()).then(|| {
        format!(
            "{} does not exist: the export to it did not finish (what it wrote is in {}); \
             export again",
            dir.display(),
            partial.display()
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bundle_appears_only_when_complete() {
        let root = tempfile::tempdir().unwrap();
        let out = root.path().join("b");
        let staging = Staging::begin(&out).unwrap();
        std::fs::create_dir(staging.bundle()).unwrap();
        std::fs::write(staging.bundle().join("manifest.json"), "{}").unwrap();
        assert!(!out.exists());
        assert!(unfinished(&out).unwrap().contains("did not finish"));
        assert!(unfinished(staging.bundle()).is_some());
        staging.complete().unwrap();
        assert!(out.join("manifest.json").is_file());
        assert!(!root.path().join("b.partial").exists());
        assert_eq!(unfinished(&out), None);
        assert!(Staging::begin(&out).is_err(), "out exists");
    }

    #[test]
    fn an_interrupted_export_is_removed_by_the_next_but_nothing_else_is() {
        let root = tempfile::tempdir().unwrap();
        let out = root.path().join("b");
        let staging = Staging::begin(&out).unwrap();
        std::fs::create_dir(staging.bundle()).unwrap();
        // Interrupted: the files stay.
        drop(staging);
        let again = Staging::begin(&out).unwrap();
        assert!(!again.bundle().exists());
        again.abandon();
        assert!(!root.path().join("b.partial").exists());
        // A directory of that name that is not ours is left alone.
        std::fs::create_dir(root.path().join("b.partial")).unwrap();
        let err = Staging::begin(&out).err().unwrap();
        assert!(
            format!("{err}").contains("not an interrupted export"),
            "{err}"
        );
    }
}
