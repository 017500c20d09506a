#!/usr/bin/env python3
"""Control-event propagation across a fleet's replicas.

For each of N rounds, a new model version is proposed through the admin
API of one replica (in turn), and the other replicas' admin APIs are
read, one persistent connection each, until they show it. The latency of
one replica is from the moment the proposing call answered (the change
is committed in the fleet then) to the first read that shows it.

Usage: propagation.py ROUNDS MODEL UPSTREAM TOKEN ADMIN_URL...
Prints one line per replica pair and a summary line:
  BENCH propagation n=<count> p50_ms=<x> p99_ms=<y> max_ms=<z>
"""

import http.client
import json
import sys
import time
import urllib.parse


def connection(url):
    parts = urllib.parse.urlsplit(url)
    return http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)


def percentile(sorted_values, fraction):
    index = min(len(sorted_values) - 1, max(0, int(round(fraction * (len(sorted_values) - 1)))))
    return sorted_values[index]


def main():
    if len(sys.argv) < 7:
        sys.exit(__doc__)
    rounds, model, upstream, token = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
    admins = sys.argv[5:]
    conns = [connection(url) for url in admins]
    headers = {"authorization": f"Bearer {token}", "content-type": "application/json"}
    latencies = []
    stamp = int(time.time())
    for n in range(rounds):
        origin = n % len(admins)
        version = f"p{stamp}-{n}"
        body = json.dumps({
            "version": version,
            "upstream": upstream,
            "risk_class": "limited",
            "change_ref": f"BENCH-{n}",
            "description": "propagation probe",
        })
        conns[origin].request("POST", f"/admin/models/{model}/versions", body, headers)
        answer = conns[origin].getresponse()
        answer.read()
        if answer.status != 201:
            sys.exit(f"propose on replica {origin + 1}: HTTP {answer.status}")
        committed = time.perf_counter()
        # The others are read in turn, so each one's latency is its own.
        waiting = [other for other in range(len(admins)) if other != origin]
        while waiting:
            for other in list(waiting):
                conns[other].request("GET", f"/admin/models/{model}/versions/{version}", headers=headers)
                reply = conns[other].getresponse()
                reply.read()
                if reply.status == 200:
                    latencies.append((time.perf_counter() - committed) * 1000)
                    waiting.remove(other)
            if waiting and time.perf_counter() > committed + 10:
                sys.exit(f"replicas {[w + 1 for w in waiting]} did not show {version} within 10 s")
    latencies.sort()
    print(
        f"BENCH propagation n={len(latencies)} p50_ms={percentile(latencies, 0.5):.2f} "
        f"p99_ms={percentile(latencies, 0.99):.2f} max_ms={latencies[-1]:.2f}"
    )


if __name__ == "__main__":
    main()
