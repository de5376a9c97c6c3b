# Rows per second and batch duration over one migrate run.
#   gnuplot -e "samples='samples.csv'; batches='batches.csv'; run='migrate_idle'; win='1'; out='x.png'; ttl='...'" chart.gp
# samples.csv: run,elapsed_s,epoch,state,batches,processed,batch_size,worker_rss_kb,rows_per_s,rows_per_s_window,batch_ms,...
# batches.csv: run,batch,commit_epoch,elapsed_s,rows,duration_ms
set terminal pngcairo size 1200,900 font ',10' noenhanced
set output out
set datafile separator ','
set grid
set multiplot layout 2,1 title ttl

set xlabel 'seconds since migrate_start'
set ylabel 'rows / s'
set yrange [0:*]
set key top right
plot batches skip 1 using (strcol(1) eq run ? $4 : NaN):(strcol(1) eq run && $6 > 0 ? $5 * 1000.0 / $6 : NaN) \
         with points pt 7 ps 0.5 lc rgb '#9090c0' title 'each batch (rows / its duration)', \
     samples skip 1 using (strcol(1) eq run ? $2 : NaN):(strcol(1) eq run ? $10 : NaN) \
         with lines lw 2 lc rgb '#1f4e9a' title sprintf('over the last %s s (50 ms samples)', win)

set ylabel 'batch duration (ms, log scale)'
set logscale y
set yrange [*:*]
plot batches skip 1 using (strcol(1) eq run ? $4 : NaN):(strcol(1) eq run && $6 > 0 ? $6 : NaN) \
         with points pt 7 ps 0.4 lc rgb '#d08040' title 'each batch (commit to commit)', \
     samples skip 1 using (strcol(1) eq run ? $2 : NaN):(strcol(1) eq run && $11 > 0 ? $11 : NaN) \
         with lines lw 1 lc rgb '#303030' title 'mean per 50 ms sample'
unset multiplot
