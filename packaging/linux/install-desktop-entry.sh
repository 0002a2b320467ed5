#!/bin/sh
# Add Prime Studio to the desktop menu of the current user, or take it out again.
#
#   ./install-desktop-entry.sh              # run from the unpacked PrimeStudio folder
#   ./install-desktop-entry.sh --uninstall
#
# Writes $XDG_DATA_HOME/applications/prime-studio.desktop (default ~/.local/share), pointing at
# the PrimeStudio executable next to this script, and the icon into the user's hicolor theme.
# Touches nothing outside that folder; needs no root. Move the app folder? Run it again.
set -eu

here=$(CDPATH='' cd -- "$(dirname -- "$0")" && pwd)
data=${XDG_DATA_HOME:-$HOME/.local/share}
apps=$data/applications
icons=$data/icons/hicolor
entry=$apps/prime-studio.desktop
sizes="16 24 32 48 64 128 256 512"

refresh() {
    if command -v update-desktop-database >/dev/null 2>&1; then
        update-desktop-database -q "$apps" 2>/dev/null || true
    fi
    if command -v gtk-update-icon-cache >/dev/null 2>&1 && [ -f "$icons/index.theme" ]; then
        gtk-update-icon-cache -q -t "$icons" 2>/dev/null || true
    fi
}

if [ "${1:-}" = "--uninstall" ]; then
    rm -f "$entry" "$icons/scalable/apps/prime-studio.svg"
    for size in $sizes; do
        rm -f "$icons/${size}x${size}/apps/prime-studio.png"
    done
    refresh
    echo "removed $entry and its icons"
    exit 0
elif [ $# -gt 0 ]; then
    echo "usage: $0 [--uninstall]" >&2
    exit 2
fi

exe=$here/PrimeStudio
if [ ! -x "$exe" ]; then
    echo "error: $exe not found: run this script from the PrimeStudio application folder" >&2
    exit 2
fi
case $exe in
    *[\"\`\$\\]*)
        echo "error: the folder path contains \" \` \$ or \\, which a desktop entry cannot run: $here" >&2
        exit 2
        ;;
esac

for size in $sizes; do
    mkdir -p "$icons/${size}x${size}/apps"
    cp "$here/share/icons/hicolor/${size}x${size}/apps/prime-studio.png" "$icons/${size}x${size}/apps/"
done
mkdir -p "$icons/scalable/apps" "$apps"
cp "$here/share/icons/hicolor/scalable/apps/prime-studio.svg" "$icons/scalable/apps/"

# Exec gets the absolute path in double quotes (spaces allowed; '%' doubled as the Desktop Entry
# spec asks); the window class of the frozen app is its executable name.
quoted=$(printf '%s' "$exe" | sed 's/%/%%/g')
tmp=$entry.tmp.$$
awk -v exec_line="Exec=\"$quoted\" %F" -v try_line="TryExec=$exe" '
    /^Exec=/ { print exec_line; print try_line; next }
    /^TryExec=/ { next }
    /^StartupWMClass=/ { print "StartupWMClass=PrimeStudio"; next }
    { print }
' "$here/share/applications/prime-studio.desktop" >"$tmp"
chmod 644 "$tmp"
mv "$tmp" "$entry"
refresh
echo "installed $entry (runs $exe)"
