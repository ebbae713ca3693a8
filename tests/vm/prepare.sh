#!/bin/bash
# Fetch Debian's kernel (if not cached) and build the guest initramfs for
# tests/vm/run.sh. Idempotent: a warm run does no network access and prints
# nothing. Prints one line to stderr for each piece of work it does.
#
#   tests/vm/prepare.sh              prepare the cache
#   tests/vm/prepare.sh --print-env  also print KVER/KERNEL/INITRD/MODDIR on stdout
#
# Env: OCI_VTPM_VM_CACHE  cache dir (default /var/cache/oci-vtpm/vm); kept
#                         outside the repo so fresh clones reuse it
#      OCI_VTPM_VM_KVER   pin a kernel ABI, e.g. 6.1.0-56-amd64 (default: the
#                         cached one, else what linux-image-amd64 depends on)
set -euo pipefail

prog=prepare.sh
die() { echo "$prog: $*" >&2; exit 1; }
now_ms() { echo $(( $(date +%s%N) / 1000000 )); }
since() { local d=$(( $(now_ms) - $1 )); printf '%d.%d s' $((d / 1000)) $((d % 1000 / 100)); }
did=() # work done, reported on one line at the end

print_env=0
case "${1:-}" in
    --print-env) print_env=1 ;;
    "") ;;
    *) die "usage: tests/vm/prepare.sh [--print-env]" ;;
esac

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
cache=${OCI_VTPM_VM_CACHE:-/var/cache/oci-vtpm/vm}

# Host tools the VM needs (inside the guest the host's / is the root fs, so
# swtpm, tpm2-tools, runc and crun come from the host too).
missing=()
for t in qemu-system-x86_64:qemu-system-x86 /bin/busybox:busybox-static cpio:cpio xz:xz-utils \
         depmod:kmod modprobe:kmod apt-get:apt dpkg-deb:dpkg flock:util-linux \
         swtpm:swtpm tpm2_getrandom:tpm2-tools runc:runc crun:crun; do
    command -v "${t%%:*}" >/dev/null 2>&1 || missing+=("${t#*:}")
done
[ ${#missing[@]} -eq 0 ] ||
    die "missing host packages; run: apt-get install -y $(printf '%s\n' "${missing[@]}" | sort -u | tr '\n' ' ')"

mkdir -p "$cache" || die "cannot create cache dir $cache"
cache=$(cd "$cache" && pwd -P)

# Serialise concurrent runs (make -j, parallel CI jobs) on the cache.
exec 9>"$cache/.lock"
flock 9

# --- kernel ---------------------------------------------------------------
kernel_ok() { # kver
    [ -f "$cache/kernel/$1/boot/vmlinuz-$1" ] && [ -f "$cache/kernel/$1/lib/modules/$1/modules.dep" ]
}

resolve_kver() {
    # linux-image-amd64 is a metapackage; its Depends names the real image.
    apt-cache depends linux-image-amd64 2>/dev/null |
        sed -n 's/^ *Depends: linux-image-\([0-9][^ ]*-amd64\)$/\1/p' | head -n1
}

# fetch_kernel KVER: download linux-image-KVER, unpack and depmod it into
# $cache/kernel/KVER (atomically). Returns 1 if apt cannot download it.
fetch_kernel() {
    local k=$1 t0 tmp deb
    t0=$(now_ms)
    tmp=$(mktemp -d "$cache/.fetch.XXXXXX")
    trap 'rm -rf "$tmp"' EXIT
    # apt drops privileges to _apt for downloads: let it write here.
    chmod 0777 "$tmp"
    if ! (cd "$tmp" && apt-get download -q "linux-image-$k" >"$tmp/apt.log" 2>&1); then
        echo "$prog: apt-get download linux-image-$k failed: $(tail -n1 "$tmp/apt.log")" >&2
        rm -rf "$tmp"
        return 1
    fi
    deb=$(find "$tmp" -maxdepth 1 -name "linux-image-${k}_*.deb" | head -n1)
    [ -n "$deb" ] || die "no .deb for linux-image-$k downloaded"
    dpkg-deb -x "$deb" "$tmp/root" || die "dpkg-deb -x $deb failed"
    depmod -b "$tmp/root" "$k" || die "depmod for $k failed"
    rm -rf "$cache/kernel/$k"
    mkdir -p "$cache/kernel"
    mv "$tmp/root" "$cache/kernel/$k"
    rm -rf "$tmp"
    trap - EXIT
    did+=("fetched kernel $(basename "$deb") in $(since "$t0")")
}

# Kernel choice: pinned by env, else the one cached before (no network on
# warm runs, no surprise upgrades), else what linux-image-amd64 depends on.
kver=${OCI_VTPM_VM_KVER:-}
if [ -z "$kver" ] && [ -f "$cache/kver" ]; then
    kver=$(cat "$cache/kver")
    kernel_ok "$kver" || kver=
fi
updated=0
if [ -z "$kver" ]; then
    kver=$(resolve_kver)
    if [ -z "$kver" ]; then
        # No package lists yet (fresh machine): refresh once.
        apt-get update -qq >/dev/null 2>&1 || die "apt-get update failed"
        updated=1
        kver=$(resolve_kver)
    fi
    [ -n "$kver" ] || die "cannot resolve linux-image-amd64 to a kernel package"
fi
if ! kernel_ok "$kver" && ! fetch_kernel "$kver"; then
    # Stale lists, or that ABI left the mirror: refresh, re-resolve, retry.
    [ "$updated" = 1 ] || apt-get update -qq >/dev/null 2>&1 || die "apt-get update failed"
    [ -n "${OCI_VTPM_VM_KVER:-}" ] || kver=$(resolve_kver)
    [ -n "$kver" ] || die "cannot resolve linux-image-amd64 to a kernel package"
    kernel_ok "$kver" || fetch_kernel "$kver" || die "cannot download linux-image-$kver"
fi
if [ -z "${OCI_VTPM_VM_KVER:-}" ] && [ "$(cat "$cache/kver" 2>/dev/null)" != "$kver" ]; then
    echo "$kver" >"$cache/kver"
fi

kroot=$cache/kernel/$kver
moddir=$kroot/lib/modules/$kver

# Boot speed: under TCG the bzImage spends ~3 s decompressing itself. The
# kernel has CONFIG_PVH, so qemu can boot the uncompressed ELF vmlinux
# directly. Extract it once (XZ payload inside the bzImage); if that fails,
# run.sh falls back to the bzImage.
vmlinux=$kroot/vmlinux
if [ ! -s "$vmlinux" ] && [ ! -e "$vmlinux.none" ]; then
    t0=$(now_ms)
    bz=$kroot/boot/vmlinuz-$kver
    off=$(LC_ALL=C grep -obUaP '\xfd7zXZ\x00' "$bz" | head -n1 | cut -d: -f1 || true)
    # (xz stops at the end of its stream: no pipe, or pipefail trips on tail's SIGPIPE)
    if [ -n "$off" ] && xz -dc --single-stream <(tail -c +"$((off + 1))" "$bz") >"$vmlinux.tmp" 2>/dev/null &&
        [ "$(head -c4 "$vmlinux.tmp")" = $'\x7fELF' ]; then
        mv "$vmlinux.tmp" "$vmlinux"
        did+=("extracted vmlinux for PVH boot in $(since "$t0")")
    else
        rm -f "$vmlinux.tmp"
        : >"$vmlinux.none"
        did+=("could not extract vmlinux, will boot the bzImage (slower)")
    fi
fi
kernel=$vmlinux
[ -s "$kernel" ] || kernel=$kroot/boot/vmlinuz-$kver

# --- initramfs --------------------------------------------------------------
# Modules needed before the host root is mounted, plus tpm_vtpm_proxy so that
# init can check /dev/vtpmx. Everything else is modprobe'd from the host-side
# module tree, which init bind-mounts at /lib/modules/$kver in the guest.
modules="virtio_pci virtio_rng 9pnet_virtio 9p overlay tpm_vtpm_proxy"

# Named by a hash of its inputs, so runs from checkouts with different init
# scripts (e.g. a CI clone next to a dev tree) never overwrite each other's
# image; images unused for a day are pruned.
hash=$(cat "$here/prepare.sh" "$here/init" /bin/busybox | sha256sum | cut -c1-12)
initrd=$cache/initramfs-$kver-$hash.cpio.gz
if [ ! -f "$initrd" ]; then
    t0=$(now_ms)
    tmp=$(mktemp -d "$cache/.initrd.XXXXXX")
    trap 'rm -rf "$tmp"' EXIT
    r=$tmp/root
    mkdir -p "$r"/{bin,dev,proc,sys,host,out,rw,newroot,lib/modules,etc}
    cp /bin/busybox "$r/bin/busybox"
    # Applet symlinks at build time: no --install step at boot.
    for a in $(/bin/busybox --list); do
        [ "$a" = busybox ] || ln -s busybox "$r/bin/$a"
    done
    cp "$here/init" "$r/init"
    chmod 0755 "$r/init"
    # Load order with dependencies resolved by the host's kmod; the kernel's
    # modules are uncompressed (CONFIG_MODULE_COMPRESS_NONE), so plain insmod.
    : >"$r/etc/modules.order"
    for m in $modules; do
        out=$(modprobe -d "$kroot" -S "$kver" --show-depends "$m") ||
            die "cannot resolve module $m for $kver"
        while read -r verb path _; do
            [ "$verb" = insmod ] || continue # "builtin X": nothing to load
            f=$(basename "$path")
            grep -qx "$f" "$r/etc/modules.order" && continue
            cp "$path" "$r/lib/modules/$f"
            echo "$f" >>"$r/etc/modules.order"
        done <<<"$out"
    done
    (cd "$r" && find . | LC_ALL=C sort | cpio -o -H newc --quiet -R 0:0) | gzip -1 >"$tmp/initrd"
    mv "$tmp/initrd" "$initrd"
    find "$cache" -maxdepth 1 -name 'initramfs-*.cpio.gz*' ! -newermt '1 day ago' -delete 2>/dev/null || true
    nmods=$(wc -l <"$r/etc/modules.order")
    rm -rf "$tmp"
    trap - EXIT
    did+=("built initramfs ($(( $(stat -c %s "$initrd") / 1024 )) KiB, $nmods modules) in $(since "$t0")")
fi

touch "$initrd" # in use: keep it from pruning

if [ ${#did[@]} -gt 0 ]; then
    msg=$(printf '%s; ' "${did[@]}")
    echo "$prog: $kver: ${msg%; } (cache $cache)" >&2
fi

if [ "$print_env" = 1 ]; then
    printf 'KVER=%q\nKERNEL=%q\nINITRD=%q\nMODDIR=%q\nCACHE=%q\n' \
        "$kver" "$kernel" "$initrd" "$moddir" "$cache"
fi
