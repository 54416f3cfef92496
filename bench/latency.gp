# Latency percentiles against offered load, from bench/results/latency.dat.
set terminal pngcairo size 800,500 enhanced font "sans,10"
set output "latency.png"
set title "hookfan end-to-end latency (webhook sent -> subscriber received, 100 subscribers)"
set xlabel "offered load (webhooks/s)"
set ylabel "latency (ms)"
set logscale y
set grid
set key top left
plot "latency.dat" using 1:2 with linespoints title "p50", \
     "" using 1:3 with linespoints title "p99", \
     "" using 1:4 with linespoints title "p999"
