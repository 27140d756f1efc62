#!/usr/bin/python3
"""Brings a change of a cluster file to the test API server (server.py), as kubectl apply and
kubectl delete would: every object of NEW that is not in OLD as it is there is applied, every
object of OLD that NEW lacks is deleted. Prints what it did, one line per object.

    apply-diff.py OLD.json NEW.json [CONTROL-URL]     (default http://127.0.0.1:6444)

Both files are Kubernetes Lists (the lab's cluster.json). The lab runs it for lab_edit_cluster
when the agents use the k8s source.
"""
import json
import sys
import urllib.request


def objects(path):
    with open(path, encoding="utf-8") as f:
        items = json.load(f)["items"]
    return {(o["kind"], o["metadata"].get("namespace", ""), o["metadata"]["name"]): o
            for o in items}


def post(control, what, body):
    req = urllib.request.Request(f"{control}/{what}", data=json.dumps(body).encode(),
                                 method="POST")
    with urllib.request.urlopen(req, timeout=10) as reply:
        reply.read()


def main():
    if len(sys.argv) not in (3, 4):
        sys.exit(__doc__)
    old, new = objects(sys.argv[1]), objects(sys.argv[2])
    control = sys.argv[3] if len(sys.argv) == 4 else "http://127.0.0.1:6444"
    for key, obj in new.items():
        if old.get(key) != obj:
            post(control, "apply", {"object": obj})
            print("applied %s %s/%s" % key)
    for key in old.keys() - new.keys():
        post(control, "delete", {"kind": key[0], "namespace": key[1], "name": key[2]})
        print("deleted %s %s/%s" % key)


main()
