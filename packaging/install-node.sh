#!/bin/sh
# Installs acr-credential-provider and its CredentialProviderConfig on a Kubernetes node, then
# prints the kubelet flags that enable them. POSIX sh, so it also runs in minimal images (the
# DaemonSet in daemonset.yaml runs it with --prefix /host).
#
# The binary is replaced atomically (copy beside it, then rename), so a kubelet running the
# provider at that moment sees the old or the new file, never half of one. An existing config
# that differs is kept as <config>.bak. Nothing restarts the kubelet: a new binary takes effect
# at the next image pull; a new config or new flags need a kubelet restart.
set -eu

program=$(basename "$0")
here=$(cd "$(dirname "$0")" && pwd)

usage() {
    cat <<EOF
Usage: $program [OPTIONS]

Installs acr-credential-provider on this node and prints the kubelet flags to set.

Options:
  --binary PATH       the provider binary [default: $here/acr-credential-provider,
                      else $here/../target/release/acr-credential-provider]
  --config PATH       the CredentialProviderConfig to install
                      [default: $here/credential-provider-config.yaml]
  --per-pod           install credential-provider-config-per-pod.yaml instead (per-pod
                      identities through service-account tokens, Kubernetes 1.33+)
  --skip-config       install the binary only (keep the node's config, e.g. on AKS)
  --prefix DIR        the node's root file system is mounted at DIR [default: /]
  --bin-dir DIR       kubelet's --image-credential-provider-bin-dir
                      [default: /var/lib/kubelet/credential-provider]
  --config-path FILE  kubelet's --image-credential-provider-config
                      [default: /var/lib/kubelet/credential-provider-config.yaml]
  --dry-run           print what would be done; change nothing
  -h, --help          print this help
EOF
}

fail() {
    printf '%s: error: %s\n' "$program" "$*" >&2
    exit 1
}

binary=""
config=""
per_pod=0
skip_config=0
prefix=""
bin_dir=/var/lib/kubelet/credential-provider
config_path=/var/lib/kubelet/credential-provider-config.yaml
dry_run=0

# Value of an option given as `--opt value` (in $2) or `--opt=value` (in $1).
value() {
    case "$1" in
        *=*) printf '%s' "${1#*=}" ;;
        *)
            [ $# -ge 2 ] || fail "$1 needs a value"
            printf '%s' "$2"
            ;;
    esac
}

while [ $# -gt 0 ]; do
    shift_by=2
    case "$1" in
        --*=*) shift_by=1 ;;
    esac
    case "$1" in
        --binary | --binary=*) binary=$(value "$@") ;;
        --config | --config=*) config=$(value "$@") ;;
        --prefix | --prefix=*) prefix=$(value "$@") ;;
        --bin-dir | --bin-dir=*) bin_dir=$(value "$@") ;;
        --config-path | --config-path=*) config_path=$(value "$@") ;;
        --per-pod) per_pod=1; shift_by=1 ;;
        --skip-config) skip_config=1; shift_by=1 ;;
        --dry-run) dry_run=1; shift_by=1 ;;
        -h | --help) usage; exit 0 ;;
        *) fail "unknown option $1 (see --help)" ;;
    esac
    shift "$shift_by"
done

case "$bin_dir" in /*) ;; *) fail "--bin-dir must be an absolute path" ;; esac
case "$config_path" in /*) ;; *) fail "--config-path must be an absolute path" ;; esac
prefix=${prefix%/}

if [ -z "$binary" ]; then
    for candidate in "$here/acr-credential-provider" "$here/../target/release/acr-credential-provider"; do
        if [ -f "$candidate" ]; then
            binary=$candidate
            break
        fi
    done
    [ -n "$binary" ] || fail "no acr-credential-provider binary beside $here; build it (cargo build --release) or pass --binary"
fi
[ -f "$binary" ] || fail "$binary does not exist"
[ -x "$binary" ] || fail "$binary is not executable"
# The binary must run here: this catches a build for another architecture or a newer glibc.
version=$("$binary" --version 2>&1) || fail "$binary does not run on this machine: $version"

if [ "$skip_config" -eq 0 ]; then
    if [ -z "$config" ]; then
        if [ "$per_pod" -eq 1 ]; then
            config="$here/credential-provider-config-per-pod.yaml"
        else
            config="$here/credential-provider-config.yaml"
        fi
    fi
    [ -f "$config" ] || fail "$config does not exist"
fi

# Runs a command, or only says it would.
run() {
    if [ "$dry_run" -eq 1 ]; then
        printf 'would run: %s\n' "$*"
    else
        "$@"
    fi
}

# Copies $1 to $2 with mode $3 through a temporary file beside $2 and a rename.
install_atomically() {
    tmp="$(dirname "$2")/.$(basename "$2").new.$$"
    run cp "$1" "$tmp"
    run chmod "$3" "$tmp"
    run mv -f "$tmp" "$2"
}

target_bin="$prefix$bin_dir/acr-credential-provider"
echo "installing $version as $target_bin"
run mkdir -p "$prefix$bin_dir"
install_atomically "$binary" "$target_bin" 0755

if [ "$skip_config" -eq 0 ]; then
    target_config="$prefix$config_path"
    if [ -f "$target_config" ] && cmp -s "$config" "$target_config"; then
        echo "$target_config is already up to date"
    else
        if [ -f "$target_config" ]; then
            echo "keeping the previous config as $target_config.bak"
            run cp -p "$target_config" "$target_config.bak"
        fi
        echo "installing $config as $target_config"
        run mkdir -p "$(dirname "$target_config")"
        install_atomically "$config" "$target_config" 0644
    fi
fi

cat <<EOF

Set these kubelet flags, then restart the kubelet (systemctl restart kubelet):
  --image-credential-provider-config=$config_path
  --image-credential-provider-bin-dir=$bin_dir
EOF
