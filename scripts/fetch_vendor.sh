#!/usr/bin/env bash
# Fetch the third-party JavaScript the offline book needs, by pinned version, from the npm
# registry, into _vendor/ (git-ignored; Sphinx copies it to _build/html/_static/).
#   MathJax 3            -> _vendor/mathjax/      (typesets the equations)
#   RequireJS            -> _vendor/widgets/      (loads the widget manager)
#   @jupyter-widgets/html-manager -> _vendor/widgets/ (renders saved ipywidgets state)
# npm checks each tarball against the registry's integrity hash.
set -euo pipefail
cd "$(dirname "$0")/.."
MATHJAX=3.2.2
HTML_MANAGER=1.0.15
REQUIREJS=2.3.8
stamp="_vendor/.versions"
want="mathjax@$MATHJAX html-manager@$HTML_MANAGER requirejs@$REQUIREJS fonts"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  exit 0
fi
command -v npm >/dev/null || { echo "fetch_vendor: npm is needed to fetch MathJax and the widget manager (install Node.js)" >&2; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
( cd "$tmp" && npm pack --silent "mathjax@$MATHJAX" "@jupyter-widgets/html-manager@$HTML_MANAGER" "requirejs@$REQUIREJS" >/dev/null )
for t in "$tmp"/*.tgz; do mkdir -p "$tmp/$(basename "$t" .tgz)" && tar -xzf "$t" -C "$tmp/$(basename "$t" .tgz)"; done
rm -rf _vendor.new && mkdir -p _vendor.new/widgets
cp -r "$tmp/mathjax-$MATHJAX/package/es5" _vendor.new/mathjax
cp "$tmp/jupyter-widgets-html-manager-$HTML_MANAGER/package/dist/embed-amd.js" _vendor.new/widgets/embed-amd.js
# the manager's icon fonts, found through a require.config path (book/_ext/offline_widgets.py)
mkdir -p _vendor.new/widgets/html-manager
find "$tmp/jupyter-widgets-html-manager-$HTML_MANAGER/package/dist" -maxdepth 1 \( -name '*.woff*' -o -name '*.ttf' -o -name '*.eot' -o -name '*.svg' \) -exec cp {} _vendor.new/widgets/html-manager/ \;
cp "$tmp/requirejs-$REQUIREJS/package/require.js" _vendor.new/widgets/require.js
echo "$want" > _vendor.new/.versions
rm -rf _vendor && mv _vendor.new _vendor
echo "fetch_vendor: $want -> _vendor/"
