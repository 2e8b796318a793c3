// Package bench compares natdoctor with miniupnpc's upnpc and libnatpmp's
// natpmpc on the lab's real miniupnpd (make bench, as root). It has no
// code of its own beyond the comparison in bench_test.go.
package bench
