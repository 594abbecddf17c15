#!/usr/bin/env bash
# Renders the admin status page in headless Chromium (Debian's `chromium`) and checks the
# screenshot. Used by tests/admin_api.rs (status_page_screenshot_in_headless_chromium) when
# Chromium is installed, and by hand:
#
#   WSUS_EDGE_TOKEN=... tests/ui/screenshot.sh http://127.0.0.1:8590 /tmp/status.png
#
# The page is fetched with the bearer token (curl) and rendered from a local copy: it is
# self-contained (inline CSS, no scripts, no external resources), so the copy renders exactly
# as the live page does. An HTML file path may be given instead of a URL.
set -euo pipefail

src=${1:?usage: screenshot.sh ADMIN_URL|FILE.html OUT.png}
out=${2:?usage: screenshot.sh ADMIN_URL|FILE.html OUT.png}
browser=$(command -v chromium || command -v chromium-browser || true)
[ -n "$browser" ] || { echo "chromium is not installed (apt-get install -y chromium)" >&2; exit 2; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
case "$src" in
  http://*|https://*)
    : "${WSUS_EDGE_TOKEN:?set WSUS_EDGE_TOKEN to the admin token}"
    curl -fsS -H "Authorization: Bearer $WSUS_EDGE_TOKEN" "${src%/}/" -o "$work/status.html"
    ;;
  *) cp "$src" "$work/status.html" ;;
esac
grep -q 'id="health"' "$work/status.html" || { echo "not the status page" >&2; exit 1; }

# --no-sandbox: CI containers run as root; the page is our own local file.
"$browser" --headless --no-sandbox --disable-gpu --hide-scrollbars --no-first-run \
  --user-data-dir="$work/profile" --window-size=1200,900 \
  --screenshot="$out" "file://$work/status.html" >"$work/chromium.log" 2>&1 || {
    cat "$work/chromium.log" >&2; exit 1; }

[ -s "$out" ] || { echo "no screenshot written" >&2; cat "$work/chromium.log" >&2; exit 1; }
head -c 8 "$out" | od -An -tx1 | grep -q '89 50 4e 47 0d 0a 1a 0a' || { echo "not a PNG" >&2; exit 1; }
echo "screenshot: $out ($(stat -c %s "$out") bytes)"
