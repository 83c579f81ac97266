# Medians of repeated runs, for the bench scripts. Reads lines of '|'-separated fields sorted by
# their first `keys` fields (`awk -F'|' -v keys=2 -f scripts/lib/medians.awk`), which name a run;
# the other fields are its figures. Prints one line per run: its key fields, then the median of
# each figure over the lines of that run, '|'-separated.
function median(column, n,   s, i, j, t) {
  for (i = 1; i <= n; i++) s[i] = figures[i, column]
  for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (s[j] < s[i]) { t = s[i]; s[i] = s[j]; s[j] = t }
  return n % 2 ? s[(n + 1) / 2] : (s[n / 2] + s[n / 2 + 1]) / 2
}
function flush(   c, line) {
  if (run == "") return
  line = run
  for (c = keys + 1; c <= width; c++) line = line "|" median(c, n)
  print line
}
{
  k = $1
  for (c = 2; c <= keys; c++) k = k "|" $c
  if (k != run) { flush(); run = k; n = 0; width = NF }
  n++
  for (c = keys + 1; c <= NF; c++) figures[n, c] = $c + 0
}
END { flush() }
