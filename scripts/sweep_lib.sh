# Sourced by scripts/reproduce_*.sh (which pass their own arguments on to every wrt-run).
#   sweep ARGS…    one `wrt-run -m` sweep; a sweep with failed runs is reported and the script goes on.
#                  With dry_run=true among the script's arguments it prints the sweep's plan and adds its
#                  run count to the total; an invalid plan (exit 2) stops the script.
#   analyze ARGS…  wrt-analyze; under dry_run=true nothing ran, so it prints the plans' estimates summed,
#                  `estimate: about W h wall time, C core-hours in all (the sweeps' plans summed, each with its jobs)`
#                  (when any run is to run), then one last line instead of the analysis:
#                  `total: N run(s) in S sweep(s), M to run (dry run: no analysis)`.
DRY_RUN=false
for arg in "$@"; do
    [[ $arg == dry_run=true ]] && DRY_RUN=true
done
PLANNED=0 TO_RUN=0 SWEEPS=0 CORE_HOURS=0 WALL_S=0

sweep() {
    if ! $DRY_RUN; then
        .venv/bin/wrt-run -m "$@" || echo "some runs failed (listed above); going on" >&2
        return 0
    fi
    local plan counts
    plan=$(.venv/bin/wrt-run -m "$@")
    echo "$plan"
    counts=$(sed -nE 's/.* ([0-9]+) run\(s\): .*, ([0-9]+) to run$/\1 \2/p' <<<"$plan" | head -n 1) || true
    [[ -n $counts ]] || { echo "no run count in the plan of: wrt-run -m $*" >&2; return 1; }
    PLANNED=$((PLANNED + ${counts% *})) TO_RUN=$((TO_RUN + ${counts#* })) SWEEPS=$((SWEEPS + 1))
    local wall_s core
    read -r wall_s core < <(sed -nE 's/.*estimate: about .* wall time \(([0-9]+) s\), ([0-9.]+) core-hours.*/\1 \2/p' <<<"$plan" | head -n 1) || true
    if [[ -n ${core:-} ]]; then
        CORE_HOURS=$(awk -v a="$CORE_HOURS" -v b="$core" 'BEGIN { print a + b }')
        WALL_S=$((WALL_S + wall_s))
    fi
}

analyze() {
    if $DRY_RUN; then
        if ((TO_RUN > 0)); then
            awk -v w="$WALL_S" -v c="$CORE_HOURS" 'BEGIN { printf "estimate: about %.1f h wall time, %.2f core-hours in all (the sweeps\047 plans summed, each with its jobs)\n", w / 3600, c }'
        fi
        echo "total: $PLANNED run(s) in $SWEEPS sweep(s), $TO_RUN to run (dry run: no analysis)"
    else
        .venv/bin/wrt-analyze "$@"
    fi
}
