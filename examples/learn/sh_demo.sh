# Small script used to learn profiles/learned/sh.toml (see profiles/README.md).
# Reads "name score" lines on stdin; prints them sorted by score with a total,
# using shell builtins, a function, arithmetic, a pipeline and two common tools.
# An empty input is an error (exit 3).
total=0
count=0
report() {
    printf '%-10s %5d\n' "$1" "$2"
}
tmp=/tmp/scores.$$
while read -r name score; do
    case "$score" in
        ''|*[!0-9]*) echo "skipping bad line: $name" >&2; continue ;;
    esac
    total=$((total + score))
    count=$((count + 1))
    echo "$name $score" >> "$tmp"
done
if [ "$count" -eq 0 ]; then
    echo "no scores" >&2
    exit 3
fi
sort -k2,2nr -k1,1 "$tmp" | while read -r name score; do report "$name" "$score"; done
echo "lines: $(wc -l < "$tmp")"
echo "total: $total"
rm -f "$tmp"
