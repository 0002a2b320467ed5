#!/bin/sh
# Pack the macOS app bundle into a disk image: the window users see shows "Prime Studio" and a
# link to /Applications to drag it onto. macOS only (hdiutil).
#
#   python packaging/build.py                          # -> dist/Prime Studio.app (and its self-test)
#   sh packaging/macos/make-dmg.sh [APP] [DMG]         # -> dist/PrimeStudio-<version>-macos-<arch>.dmg
#
# The image is compressed (UDZO) and not signed or notarised: Gatekeeper asks to confirm the
# first start (right-click > Open). Removing the app is dragging it to the Bin; the user's models
# and settings in ~/Library/Application Support/Prime Studio stay.
set -eu

here=$(CDPATH='' cd -- "$(dirname -- "$0")" && pwd)
root=$(dirname -- "$(dirname -- "$here")")
app=${1:-$root/dist/Prime Studio.app}
version=$(sed -n 's/^version = "\(.*\)"$/\1/p' "$root/pyproject.toml" | head -n 1)
dmg=${2:-$root/dist/PrimeStudio-$version-macos-$(uname -m).dmg}

if [ ! -x "$app/Contents/MacOS/PrimeStudio" ]; then
    echo "error: $app is not a built app bundle; run  python packaging/build.py  first" >&2
    exit 2
fi
if ! command -v hdiutil >/dev/null 2>&1; then
    echo "error: hdiutil not found: disk images are made on macOS" >&2
    exit 2
fi

stage=$(mktemp -d "${TMPDIR:-/tmp}/prime-dmg.XXXXXX")
trap 'rm -rf "$stage"' EXIT INT TERM
ditto "$app" "$stage/Prime Studio.app"      # keeps links, extended attributes and the signature
ln -s /Applications "$stage/Applications"
tmp=$dmg.tmp.dmg
rm -f "$tmp"
hdiutil create -quiet -volname "Prime Studio" -srcfolder "$stage" -fs HFS+ -format UDZO -ov "$tmp"
mv -f "$tmp" "$dmg"
echo "built $dmg ($(du -h "$dmg" | cut -f1))"
