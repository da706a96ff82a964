# jflat.awk - flattens one JSON document on stdin into "path=value" lines,
# e.g. {"peer":{"role":"BACKUP"},"a":[1]} -> peer.role=BACKUP, a.0=1; strings
# unquoted with their escapes kept.  Plain POSIX awk (mawk on Debian): the
# rig parses lbctl --json without python, fast enough for 10 ms polls.
{ doc = doc $0 "\n" }
END {
	n = length(doc); i = 1; depth = 0
	while (i <= n) {
		c = substr(doc, i, 1)
		if (c == "{" || c == "[") {
			depth++; kind[depth] = c; idx[depth] = 0; key[depth] = ""
			expect_key[depth] = (c == "{"); i++; continue
		}
		if (c == "}" || c == "]") { depth--; i++; continue }
		if (c == ",") { if (kind[depth] == "{") expect_key[depth] = 1; else idx[depth]++; i++; continue }
		if (c == ":") { i++; continue }
		if (c == "\"") {
			j = i + 1; s = ""
			while (j <= n) {
				d = substr(doc, j, 1)
				if (d == "\\") { s = s substr(doc, j, 2); j += 2; continue }
				if (d == "\"") break
				s = s d; j++
			}
			i = j + 1
			if (depth > 0 && kind[depth] == "{" && expect_key[depth]) {
				key[depth] = s; expect_key[depth] = 0; continue
			}
			emit(s); continue
		}
		if (c ~ /[ \t\r\n]/) { i++; continue }
		j = i
		while (j <= n && substr(doc, j, 1) !~ /[,}\] \t\r\n]/) j++
		emit(substr(doc, i, j - i)); i = j
	}
}
function path(   p, k) {
	p = ""
	for (k = 1; k <= depth; k++)
		p = p (k > 1 ? "." : "") (kind[k] == "{" ? key[k] : idx[k])
	return p
}
function emit(v) { print path() "=" v }
