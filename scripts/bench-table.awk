# Turns `go test -bench` lines of the handoff benchmarks (metrics by-hand-ms,
# dindstore-ms, library-ms, ratio, library-ratio) into one table. Other lines pass
# through on stderr.
/^Benchmark/ && /by-hand-ms/ {
	name = $1; sub(/^Benchmark/, "", name); sub(/-[0-9]+$/, "", name)
	delete m
	for (i = 3; i < NF; i += 2) m[$(i + 1)] = $i
	rows[++n] = sprintf("| %-20s | %8s | %8s | %6s | %8s | %6s |", name, m["by-hand-ms"], m["dindstore-ms"],
		m["ratio"], m["library-ms"], m["library-ratio"])
	next
}
{ print > "/dev/stderr" }
END {
	if (n == 0) exit 1
	print "| step                 | by hand  | CLI      | ratio  | library  | ratio  |"
	print "|----------------------|----------|----------|--------|----------|--------|"
	for (i = 1; i <= n; i++) print rows[i]
	print "(ms, medians of interleaved runs; CLI: `dindstore run`, library: handoff.Hand in one process)"
}
