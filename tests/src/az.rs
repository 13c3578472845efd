//! The one stand-in for the Azure CLI: a shell script named `az` that answers
//! `az account get-access-token` as after `az login`, and logs each call's arguments.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// Writes `bin_dir/az` (creating `bin_dir`): it answers `az account get-access-token` with
/// `access_token` expiring at `expires_on` (unix seconds) for [`crate::TENANT`], appends the
/// arguments of every call as one line to `log`, and refuses any other command with exit 2.
/// It uses shell builtins only, so it runs with nothing of the machine's on `PATH`. Returns the
/// script's path.
pub fn install(
    bin_dir: &Path,
    log: &Path,
    access_token: &str,
    expires_on: i64,
) -> std::io::Result<PathBuf> {
    let answer = serde_json::json!({
        "accessToken": access_token,
        "expiresOn": "2099-01-01 00:00:00.000000",
        "expires_on": expires_on,
        "subscription": "00000000-0000-0000-0000-00000000abcd",
        "tenant": crate::TENANT,
        "tokenType": "Bearer",
    });
    let script = format!(
        "#!/bin/sh\n\
         # Stand-in for the Azure CLI after `az login`: `az account get-access-token`.\n\
         echo \"$*\" >> '{log}'\n\
         case \"$1 $2\" in\n\
         \"account get-access-token\") ;;\n\
         *) echo \"az stand-in: unsupported command: $*\" >&2; exit 2 ;;\n\
         esac\n\
         printf '%s\\n' '{answer}'\n",
        log = log.display(),
    );
    std::fs::create_dir_all(bin_dir)?;
    let path = bin_dir.join("az");
    std::fs::write(&path, script)?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))?;
    Ok(path)
}

/// The arguments of each call the stand-in logged to `log` so far, a line each (none when it was
/// never called).
pub fn calls(log: &Path) -> Vec<String> {
    std::fs::read_to_string(log)
        .map(|s| s.lines().map(str::to_string).collect())
        .unwrap_or_default()
}
