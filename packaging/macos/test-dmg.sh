#!/bin/sh
# Check a built disk image the way a user meets it: mount it, copy the app out (as dragging it
# to Applications does), run the copied app's headless self-test, unmount. macOS only.
#
#   sh packaging/macos/test-dmg.sh dist/PrimeStudio-0.1.0-macos-arm64.dmg [SCREENSHOT.png]
set -eu

dmg=${1:?usage: test-dmg.sh DMG [SCREENSHOT]}
shot=${2:-${TMPDIR:-/tmp}/prime-studio-dmg.png}
mnt=$(mktemp -d "${TMPDIR:-/tmp}/prime-dmg-mnt.XXXXXX")
apps=$(mktemp -d "${TMPDIR:-/tmp}/prime-dmg-apps.XXXXXX")
data=$(mktemp -d "${TMPDIR:-/tmp}/prime-dmg-home.XXXXXX")
cleanup() {
    hdiutil detach -quiet "$mnt" 2>/dev/null || true
    rm -rf "$apps" "$data"
    rmdir "$mnt" 2>/dev/null || true
}
trap cleanup EXIT INT TERM

hdiutil attach -quiet -nobrowse -readonly -mountpoint "$mnt" "$dmg"
test -L "$mnt/Applications" || { echo "error: the image has no Applications link" >&2; exit 1; }
ditto "$mnt/Prime Studio.app" "$apps/Prime Studio.app"
hdiutil detach -quiet "$mnt"
du -sh "$apps/Prime Studio.app"

started=$(date +%s)
QT_QPA_PLATFORM=offscreen PRIME_STUDIO_HOME=$data \
    "$apps/Prime Studio.app/Contents/MacOS/PrimeStudio" --self-test generate --screenshot "$shot"
echo "self-test of the app copied from the image passed in $(( $(date +%s) - started )) s; screenshot $shot"
