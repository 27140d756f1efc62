#!/usr/bin/python3
"""A test Kubernetes API server speaking the real wire format, for the k8s source's tests.

    server.py --port PORT --cert CERT --key KEY --token-file FILE --control PORT
              [--state FILE] [FIXTURE.json]

Serves, over TLS with a bearer token (401 otherwise; the token file is re-read on each
request, so a test rotates it by rewriting the file):
  GET /api/v1/nodes | namespaces | pods            (fieldSelector spec.hostNetwork=false honoured)
  GET /apis/meshcrypt.io/v1alpha1/meshcryptnodes
  GET /api/v1/namespaces/NS/secrets                (fieldSelector metadata.name=NAME)
with ?limit/&continue pagination (one resourceVersion per list), and ?watch=1&resourceVersion=RV
(&allowWatchBookmarks, &timeoutSeconds): a chunked stream of events after RV, then live ones,
BOOKMARKs, and 410 Gone for a resourceVersion older than the history kept (as an HTTP status,
or as an in-stream ERROR event, as the control says).

The control port (plain HTTP on 127.0.0.1) takes JSON posts from the test:
  POST /apply   {"object": {...}}            add or modify (kind, metadata.namespace/name)
  POST /delete  {"kind": K, "namespace": N, "name": M}
  POST /compact {"delete": {...}}             forget the history (older resourceVersions -> 410),
                                              deleting that object without an event
  POST /mode    {"gone": "http"|"stream", "malformed": true, "huge": BYTES, "cut": true}
  GET  /stats                                 counts of lists, watches and writes served
  GET  /object/KIND/NAME                      a cluster-scoped object as stored
The API also takes GET, POST (create, 409 when it exists) and PUT (update, 409 when the
resourceVersion is not the stored one) of MeshcryptNodes.
  POST /mode    {"slow": SECONDS}            every list and watch waits that long first
  POST /mode    {"slow_kinds": {KIND: SECONDS}}  lists and watches of KIND wait that long
  POST /mode    {"conflict": N}               the next N MeshcryptNode updates lose a race (409)
The fixture is a Kubernetes List (the lab's cluster.json) loaded at start. With --state the
objects and the resourceVersion are saved on SIGTERM and loaded at the next start (a restart
keeps the history, as etcd does: clients resume their watches without relisting).
"""
import argparse
import copy
import json
import os
import signal
import sys
import ssl
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

COLLECTIONS = {
    "/api/v1/nodes": "Node",
    "/api/v1/namespaces": "Namespace",
    "/api/v1/pods": "Pod",
    "/apis/meshcrypt.io/v1alpha1/meshcryptnodes": "MeshcryptNode",
}
API_VERSION = {"Node": "v1", "Namespace": "v1", "Pod": "v1", "Secret": "v1",
               "MeshcryptNode": "meshcrypt.io/v1alpha1"}


# Discovery, as kubectl asks for it before anything else.
def resource(name, singular, kind, namespaced):
    return {"name": name, "singularName": singular, "namespaced": namespaced, "kind": kind,
            "verbs": ["get", "list", "watch", "create", "update", "patch", "delete"]}


DISCOVERY = {
    "/api": {"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": []},
    "/apis": {"kind": "APIGroupList", "apiVersion": "v1", "groups": [{
        "name": "meshcrypt.io",
        "versions": [{"groupVersion": "meshcrypt.io/v1alpha1", "version": "v1alpha1"}],
        "preferredVersion": {"groupVersion": "meshcrypt.io/v1alpha1", "version": "v1alpha1"}}]},
    "/api/v1": {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": "v1", "resources": [
        resource("nodes", "node", "Node", False),
        resource("namespaces", "namespace", "Namespace", False),
        resource("pods", "pod", "Pod", True),
        resource("secrets", "secret", "Secret", True)]},
    "/apis/meshcrypt.io/v1alpha1": {"kind": "APIResourceList", "apiVersion": "v1",
                                     "groupVersion": "meshcrypt.io/v1alpha1", "resources": [
        resource("meshcryptnodes", "meshcryptnode", "MeshcryptNode", False)]},
}


class Cluster:
    def __init__(self):
        self.lock = threading.Condition()
        self.rv = 1000
        self.objects = {}      # (kind, ns, name) -> object
        self.history = []      # (rv, type, object)
        self.oldest = self.rv  # resourceVersions before this are gone
        self.mode = {"gone": "http"}
        self.stats = {"lists": 0, "watches": 0}
        self.generation = 0    # bumped to cut every open watch
        self.latest_watch = {}  # kind -> id of its newest watch
        # the encoded items of recent lists, by (kind, ns, selector, rv): the pages of a list
        # all come from one snapshot, taken (and sorted) once, however lists interleave
        self.snapshots = {}
        self.encoded = {}      # (kind, ns, name) -> (resourceVersion, the object as a list item)

    def key(self, obj):
        m = obj["metadata"]
        return (obj["kind"], m.get("namespace", ""), m["name"])

    def list_item(self, obj):
        """The object as a list item (no kind or apiVersion) in JSON, encoded once per
        resourceVersion: a list of 150,000 pods then costs a join, not 150,000 encodings."""
        k, rv = self.key(obj), obj["metadata"]["resourceVersion"]
        hit = self.encoded.get(k)
        if hit is None or hit[0] != rv:
            item = {f: v for f, v in obj.items() if f not in ("kind", "apiVersion")}
            hit = self.encoded[k] = (rv, json.dumps(item).encode())
        return hit[1]

    def apply(self, obj, record=True):
        with self.lock:
            self.rv += 1
            obj = copy.deepcopy(obj)
            obj.setdefault("apiVersion", API_VERSION.get(obj["kind"], "v1"))
            obj["metadata"]["resourceVersion"] = str(self.rv)
            k = self.key(obj)
            kind = "MODIFIED" if k in self.objects else "ADDED"
            self.objects[k] = obj
            if record:
                # what the test asked to inject goes with the next event, to every watcher
                extra = {k: self.mode.pop(k) for k in ("malformed", "huge") if k in self.mode}
                self.history.append((self.rv, kind, obj, extra))
            self.lock.notify_all()

    def delete(self, kind, ns, name):
        with self.lock:
            obj = self.objects.pop((kind, ns or "", name), None)
            if obj is None:
                return False
            self.rv += 1
            obj = copy.deepcopy(obj)
            obj["metadata"]["resourceVersion"] = str(self.rv)
            self.history.append((self.rv, "DELETED", obj, {}))
            self.lock.notify_all()
            return True

    def compact(self, gone=None):
        """Forgets the history (older resourceVersions get 410), and deletes the object gone
        (kind, namespace, name) without an event: a client learns of it only by relisting."""
        with self.lock:
            if gone:
                self.objects.pop((gone["kind"], gone.get("namespace") or "", gone["name"]), None)
                self.rv += 1
            self.history = []
            self.oldest = self.rv + 1
            self.generation += 1
            self.lock.notify_all()


CLUSTER = Cluster()
TOKEN_FILE = None


def matches(obj, kind, query, ns=None):
    if obj["kind"] != kind:
        return False
    if ns is not None and obj["metadata"].get("namespace") != ns:
        return False
    sel = query.get("fieldSelector", [""])[0]
    for term in filter(None, sel.split(",")):
        field, _, value = term.partition("=")
        if field == "spec.hostNetwork":
            if str(obj.get("spec", {}).get("hostNetwork", False)).lower() != value:
                return False
        elif field == "metadata.name":
            if obj["metadata"]["name"] != value:
                return False
    return True


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        pass

    def send_json(self, code, body):
        self.send_encoded(code, json.dumps(body).encode())

    def send_encoded(self, code, data):
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def status(self, code, reason, message):
        self.send_json(code, {"kind": "Status", "apiVersion": "v1", "metadata": {},
                              "status": "Failure", "message": message, "reason": reason,
                              "code": code})

    def collection(self, path):
        if path in COLLECTIONS:
            return COLLECTIONS[path], None
        parts = path.split("/")
        if len(parts) == 6 and parts[1:4] == ["api", "v1", "namespaces"] and parts[5] == "secrets":
            return "Secret", parts[4]
        return None, None

    def authorized(self):
        with CLUSTER.lock:
            slow = CLUSTER.mode.get("slow", 0)
        if slow:
            time.sleep(slow)
        with open(TOKEN_FILE, encoding="ascii") as f:
            token = f.read().strip()
        if self.headers.get("Authorization") != "Bearer " + token:
            self.status(401, "Unauthorized", "Unauthorized")
            return False
        return True

    MCN = "/apis/meshcrypt.io/v1alpha1/meshcryptnodes"

    def body(self):
        return json.loads(self.rfile.read(int(self.headers.get("Content-Length", "0"))) or b"{}")

    def do_POST(self):
        if not self.authorized():
            return
        if self.path != self.MCN:
            self.status(405, "MethodNotAllowed", "only MeshcryptNodes are written here")
            return
        obj = self.body()
        with CLUSTER.lock:
            CLUSTER.stats["writes"] = CLUSTER.stats.get("writes", 0) + 1
            if ("MeshcryptNode", "", obj["metadata"]["name"]) in CLUSTER.objects:
                self.status(409, "AlreadyExists", "meshcryptnodes already exists")
                return
            CLUSTER.apply(obj)
            self.send_json(201, CLUSTER.objects[("MeshcryptNode", "", obj["metadata"]["name"])])

    def do_PUT(self):
        if not self.authorized():
            return
        name = self.path[len(self.MCN) + 1:]
        if not self.path.startswith(self.MCN + "/") or not name:
            self.status(405, "MethodNotAllowed", "only MeshcryptNodes are written here")
            return
        obj = self.body()
        with CLUSTER.lock:
            CLUSTER.stats["writes"] = CLUSTER.stats.get("writes", 0) + 1
            have = CLUSTER.objects.get(("MeshcryptNode", "", name))
            if have is None:
                self.status(404, "NotFound", f"meshcryptnodes \"{name}\" not found")
                return
            if CLUSTER.mode.get("conflict", 0) > 0:
                CLUSTER.mode["conflict"] -= 1  # as if another writer got there first
                CLUSTER.apply(have)
            elif obj["metadata"].get("resourceVersion") != have["metadata"]["resourceVersion"]:
                self.status(409, "Conflict", "the object has been modified; please apply your "
                            "changes to the latest version and try again")
                return
            CLUSTER.apply(obj)
            self.send_json(200, CLUSTER.objects[("MeshcryptNode", "", name)])

    def do_GET(self):
        if not self.authorized():
            return
        url = urllib.parse.urlsplit(self.path)
        if url.path.startswith(self.MCN + "/"):
            with CLUSTER.lock:
                obj = CLUSTER.objects.get(("MeshcryptNode", "", url.path[len(self.MCN) + 1:]))
            if obj is None:
                self.status(404, "NotFound", "meshcryptnodes not found")
            else:
                self.send_json(200, obj)
            return
        query = urllib.parse.parse_qs(url.query)
        if url.path.rstrip("/") in DISCOVERY:
            self.send_json(200, DISCOVERY[url.path.rstrip("/")])
            return
        if url.path.startswith("/api/v1/namespaces/") and url.path.endswith("/pods"):
            url = url._replace(path="/api/v1/pods")  # kubectl get pods -n NS
        kind, ns = self.collection(url.path)
        if kind is None:
            self.status(404, "NotFound", "the server could not find the requested resource")
            return
        with CLUSTER.lock:
            slow = CLUSTER.mode.get("slow_kinds", {}).get(kind, 0)
        if slow:
            time.sleep(slow)
        if query.get("watch", ["0"])[0] in ("1", "true"):
            self.watch(kind, ns, query)
        else:
            self.list(kind, ns, query)

    def list(self, kind, ns, query):
        limit = int(query.get("limit", ["0"])[0] or 0)
        cont = query.get("continue", [""])[0]
        with CLUSTER.lock:
            CLUSTER.stats["lists"] += 1
            if cont:
                rv, _, offset = cont.partition(":")
                offset = int(offset)
                if int(rv) < CLUSTER.oldest - 1:
                    self.status(410, "Expired", "The provided continue parameter is too old")
                    return
            else:
                rv, offset = str(CLUSTER.rv), 0
            key = (kind, ns, query.get("fieldSelector", [""])[0], rv)
            items = CLUSTER.snapshots.get(key)
            if items is None:
                items = sorted((o for o in CLUSTER.objects.values() if matches(o, kind, query, ns)),
                               key=lambda o: (o["metadata"].get("namespace", ""), o["metadata"]["name"]))
                items = CLUSTER.snapshots[key] = [CLUSTER.list_item(o) for o in items]
                while len(CLUSTER.snapshots) > 16:
                    del CLUSTER.snapshots[next(iter(CLUSTER.snapshots))]
        page = items[offset:offset + limit] if limit else items[offset:]
        meta = {"resourceVersion": rv}
        if limit and offset + limit < len(items):
            meta["continue"] = f"{rv}:{offset + limit}"
        head = json.dumps({"kind": kind + "List", "apiVersion": API_VERSION[kind], "metadata": meta})
        self.send_encoded(200, head[:-1].encode() + b', "items": [' + b", ".join(page) + b"]}")

    def chunk(self, data):
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()

    def watch(self, kind, ns, query):
        rv = int(query.get("resourceVersion", ["0"])[0] or 0)
        timeout = int(query.get("timeoutSeconds", ["300"])[0])
        bookmarks = query.get("allowWatchBookmarks", ["false"])[0] == "true"
        with CLUSTER.lock:
            CLUSTER.stats["watches"] += 1
            my_watch = CLUSTER.stats["watches"]
            CLUSTER.latest_watch[kind] = my_watch
            gone = rv < CLUSTER.oldest - 1
            mode = dict(CLUSTER.mode)
            generation = CLUSTER.generation
        if gone and mode.get("gone") == "http":
            self.status(410, "Expired", f"too old resource version: {rv}")
            return
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        try:
            if gone:
                self.chunk(json.dumps({"type": "ERROR", "object": {
                    "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                    "message": f"too old resource version: {rv}", "reason": "Expired",
                    "code": 410}}).encode() + b"\n")
                self.chunk(b"")
                return
            end = time.monotonic() + timeout
            sent = rv
            while time.monotonic() < end:
                with CLUSTER.lock:
                    def pending():
                        return [e for e in CLUSTER.history
                                if e[0] > sent and matches(e[2], kind, query, ns)]
                    events = pending()
                    if not events:
                        CLUSTER.lock.wait(0.5)
                        events = pending()
                    if CLUSTER.generation != generation:
                        break
                    brv = CLUSTER.rv  # every event of this watch up to brv is in events
                    # one injection, to the newest watcher of the kind: older ones may
                    # belong to clients that have gone
                    newest = CLUSTER.latest_watch.get(kind) == my_watch
                    injections = [(e[3].pop("malformed", None), e[3].pop("huge", None))
                                  if newest else (None, None) for e in events]
                if not events:
                    # a bookmark every half second: the client's resourceVersion moves, and a
                    # watcher whose client has gone finds out (the write fails) and ends
                    if bookmarks:
                        self.chunk(json.dumps({"type": "BOOKMARK", "object": {
                            "kind": kind, "apiVersion": API_VERSION[kind],
                            "metadata": {"resourceVersion": str(brv)}}}).encode() + b"\n")
                        sent = max(sent, brv)
                    continue
                for (erv, etype, obj, _), (malformed, huge) in zip(events, injections):
                    line = json.dumps({"type": etype, "object": obj}).encode() + b"\n"
                    if malformed:
                        self.chunk(b'{"type": "ADDED", "object": {"kind": \n')
                    if huge:
                        big = {"type": "ADDED", "object": {"kind": kind, "apiVersion": "v1",
                               "metadata": {"name": "huge", "annotations": {"x": "y" * huge}}}}
                        self.chunk(json.dumps(big).encode() + b"\n")
                    # split each event across two chunks: readers must join them
                    half = len(line) // 2
                    self.chunk(line[:half])
                    self.chunk(line[half:])
                    sent = erv
            self.chunk(b"")
        except (BrokenPipeError, ConnectionResetError, ssl.SSLError):
            pass


class Control(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        pass

    def reply(self, body):
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        if self.path.startswith("/object/"):
            # /object/KIND/NAME: a cluster-scoped object as stored, for the test's checks
            _, _, kind, name = self.path.split("/", 3)
            with CLUSTER.lock:
                self.reply(CLUSTER.objects.get((kind, "", name)) or {})
            return
        with CLUSTER.lock:
            self.reply(dict(CLUSTER.stats, rv=CLUSTER.rv))

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", "0"))) or b"{}")
        if self.path == "/apply":
            CLUSTER.apply(body["object"])
        elif self.path == "/delete":
            CLUSTER.delete(body["kind"], body.get("namespace"), body["name"])
        elif self.path == "/compact":
            CLUSTER.compact(body.get("delete"))
        elif self.path == "/mode":
            with CLUSTER.lock:
                CLUSTER.mode.update(body)
                if body.get("cut"):
                    CLUSTER.generation += 1
                    CLUSTER.lock.notify_all()
        self.reply({"rv": CLUSTER.rv})


def main():
    global TOKEN_FILE
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--address", default="127.0.0.1")
    ap.add_argument("--cert", required=True)
    ap.add_argument("--key", required=True)
    ap.add_argument("--token-file", required=True)
    ap.add_argument("--control", type=int, required=True)
    ap.add_argument("--state")
    ap.add_argument("fixture", nargs="?")
    args = ap.parse_args()
    TOKEN_FILE = args.token_file
    if args.state and os.path.exists(args.state):
        with open(args.state, encoding="utf-8") as f:
            saved = json.load(f)
        for obj in saved["objects"]:
            CLUSTER.objects[CLUSTER.key(obj)] = obj
        CLUSTER.history = [tuple(e) for e in saved["history"]]
        CLUSTER.rv, CLUSTER.oldest = saved["rv"], saved["oldest"]
    elif args.fixture:
        with open(args.fixture, encoding="utf-8") as f:
            for obj in json.load(f)["items"]:
                CLUSTER.apply(obj, record=False)
        CLUSTER.oldest = CLUSTER.rv
    for obj in CLUSTER.objects.values():
        CLUSTER.list_item(obj)  # encoded before "ready": the first list is as fast as the next
    api = ThreadingHTTPServer((args.address, args.port), Handler)
    api.daemon_threads = True
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls.load_cert_chain(args.cert, args.key)
    api.socket = tls.wrap_socket(api.socket, server_side=True)
    control = ThreadingHTTPServer(("127.0.0.1", args.control), Control)
    control.daemon_threads = True
    threading.Thread(target=control.serve_forever, daemon=True).start()
    def save_and_exit(signum, frame):
        if args.state:
            with CLUSTER.lock:
                saved = {"rv": CLUSTER.rv, "oldest": CLUSTER.oldest, "history": CLUSTER.history,
                         "objects": list(CLUSTER.objects.values())}
            with open(args.state, "w", encoding="utf-8") as f:
                json.dump(saved, f)
        os._exit(0)

    signal.signal(signal.SIGTERM, save_and_exit)
    print("ready", flush=True)
    api.serve_forever()


main()
