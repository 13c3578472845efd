#!/usr/bin/env bash
# Runs a command as if on an Azure VM whose user has the Azure CLI and Azure settings, without
# changing the machine: in a private mount namespace, the DMI chassis asset tag
# (/sys/class/dmi/id/chassis_asset_tag) reads Azure's tag; an `az` that records each run and
# fails comes first on PATH; and the environment carries a service principal and
# ACR_IDENTITY=cli. A test that reads any of these machine facts instead of the ones it injects
# sees another identity chain (IMDS, the CLI, the principal) and fails, and any run of that `az`
# fails the command. scripts/test.sh runs the tests this way, so CI proves on every run that the
# suite is green on an Azure VM (docs/TESTING.md). Needs root (a mount namespace).
#
#   scripts/as-azure-vm.sh COMMAND [ARGS...]
set -euo pipefail

program=as-azure-vm.sh
fail() {
    printf '%s: error: %s\n' "$program" "$*" >&2
    exit 1
}

# Azure's chassis asset tag (every Azure VM has it; the helper then picks IMDS).
AZURE_TAG=7783-7084-3265-9085
TAG_FILE=/sys/class/dmi/id/chassis_asset_tag

[ $# -gt 0 ] || fail "usage: $program COMMAND [ARGS...]"

if [ "${AS_AZURE_VM_SCRATCH:-}" = "" ]; then
    [ "$(id -u)" -eq 0 ] || fail "needs root (a private mount namespace)"
    scratch=$(mktemp -d)
    trap 'rm -rf "$scratch"' EXIT
    mkdir "$scratch/bin"
    cat >"$scratch/bin/az" <<EOF
#!/bin/sh
echo "az \$*" >>"$scratch/az-runs.log"
echo "az: the machine's Azure CLI, a stand-in from scripts/as-azure-vm.sh: no test may run it" >&2
exit 1
EOF
    chmod 755 "$scratch/bin/az"
    printf '%s\n' "$AZURE_TAG" >"$scratch/chassis_asset_tag"
    status=0
    AS_AZURE_VM_SCRATCH=$scratch unshare --mount --propagation private -- "$0" "$@" || status=$?
    if [ -s "$scratch/az-runs.log" ]; then
        printf '%s: error: a test ran the machine'"'"'s az:\n' "$program" >&2
        cat "$scratch/az-runs.log" >&2
        status=1
    fi
    exit "$status"
fi

# Inside the namespace: nothing mounted here is seen outside it.
scratch=$AS_AZURE_VM_SCRATCH
unset AS_AZURE_VM_SCRATCH
if [ -e "$TAG_FILE" ]; then
    mount --bind "$scratch/chassis_asset_tag" "$TAG_FILE"
else
    # A machine without DMI (some VMs have no SMBIOS): sysfs cannot take a new folder, so a tmpfs
    # goes over /sys/class with each of the machine's classes bound back, and dmi/id added.
    mkdir "$scratch/sys-class"
    mount --bind /sys/class "$scratch/sys-class"
    mount -t tmpfs -o mode=755 as-azure-vm /sys/class
    for class in "$scratch"/sys-class/*; do
        mkdir "/sys/class/${class##*/}"
        mount --bind "$class" "/sys/class/${class##*/}"
    done
    mkdir -p "${TAG_FILE%/*}"
    cp "$scratch/chassis_asset_tag" "$TAG_FILE"
fi
[ "$(cat "$TAG_FILE")" = "$AZURE_TAG" ] || fail "$TAG_FILE does not read Azure's tag"

# What a user of that VM may have set: a service principal, and the CLI as their identity.
export AZURE_TENANT_ID=aaaaaaaa-0000-4000-8000-0000000a2b1e
export AZURE_CLIENT_ID=bbbbbbbb-0000-4000-8000-0000000a2b1e
export AZURE_CLIENT_SECRET=the-machines-own-secret
export ACR_IDENTITY=cli
export PATH="$scratch/bin:$PATH"
exec "$@"
