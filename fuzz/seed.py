#!/usr/bin/env python3
"""Writes seed inputs for the fuzz targets into fuzz/seeds/<target>/ from
the project's own tests and rule files (see fuzz/README.md). Run from the
repository root; the seeds are then merged into fuzz/corpus/ with
`cargo fuzz cmin`, so only the ones that add coverage stay."""

import hashlib
import pathlib
import re

ROOT = pathlib.Path(__file__).resolve().parent.parent
OUT = ROOT / "fuzz" / "seeds"


def literals(src):
    """Every Rust string literal of a source text, unescaped."""
    out, i = [], 0
    while i < len(src):
        m = re.compile(r'(?<![A-Za-z0-9_])(b?r(#*)"|b?")').match(src, i)
        if src.startswith("//", i):
            i = src.find("\n", i)
            i = len(src) if i < 0 else i
            continue
        if src[i] == "'" and re.match(r"'(\\.|[^\\'])'", src[i:]):
            i += len(re.match(r"'(\\.|[^\\'])'", src[i:]).group(0))
            continue
        if not m:
            i += 1
            continue
        if "r" in m.group(1):
            end = '"' + m.group(2)
            j = src.index(end, m.end())
            out.append(src[m.end():j])
            i = j + len(end)
            continue
        j, s = m.end(), []
        while src[j] != '"':
            if src[j] == "\\":
                c = src[j + 1]
                if c == "\n":
                    j += 2
                    while src[j] in " \t\n":
                        j += 1
                    continue
                if c == "u":
                    k = src.index("}", j)
                    s.append(chr(int(src[j + 3:k], 16)))
                    j = k + 1
                    continue
                if c == "x":
                    s.append(chr(int(src[j + 2:j + 4], 16)))
                    j += 4
                    continue
                s.append({"n": "\n", "r": "\r", "t": "\t", "0": "\0"}.get(c, c))
                j += 2
            else:
                s.append(src[j])
                j += 1
        out.append("".join(s))
        i = j + 1
    return out


def write(target, data):
    if isinstance(data, str):
        data = data.encode("utf-8", "surrogatepass")
    d = OUT / target
    d.mkdir(parents=True, exist_ok=True)
    (d / hashlib.sha1(data).hexdigest()).write_bytes(data)


def read(path):
    return (ROOT / path).read_text()


METHODS = {"GET", "PUT", "POST", "HEAD", "DELETE", "OPTIONS", "CONNECT", "PATCH", "put", "get"}


def classify():
    # src/s3/tests/classify.rs: ("METHOD", "host/target", &[(name, value), …], …)
    src = read("src/s3/tests/classify.rs")
    consts = {"FORM": ("content-type", "multipart/form-data; boundary=xyz"),
              "COPY": ("x-amz-copy-source", "/src-bucket/some/key")}
    lits = literals(src)
    urls = [l for l in lits if re.match(r"^[a-z0-9.\[\]:-]*/", l) or l.startswith("http")]
    row = re.compile(r'\(\s*"([A-Za-z]+)",\s*"((?:[^"\\]|\\.)*)",\s*&\[(.*?)\]', re.S)
    for m in row.finditer(src):
        method, url, hdrs = m.group(1), literals('"' + m.group(2) + '"')[0], m.group(3)
        headers = [tuple(literals(h)) for h in re.findall(r'\(\s*"[^"]*",\s*"(?:[^"\\]|\\.)*"\s*\)', hdrs)]
        headers += [consts[c] for c in re.findall(r"\b(FORM|COPY)\b", hdrs)]
        host, _, target = url.partition("/")
        lines = [f"{method} /{target} HTTP/1.1", f"Host: {host}"]
        lines += [f"{n}: {v}" for n, v in headers]
        write("classify", "\r\n".join(lines) + "\r\n\r\n")
    for url in urls:
        host, _, target = url.partition("/")
        if url.startswith("http"):
            write("classify", f"GET {url} HTTP/1.1\r\n\r\n")
        else:
            write("classify", f"GET /{target} HTTP/1.1\r\nHost: {host}\r\n\r\n")
    # tests/bypass.rs rows: "what": ["REQUEST LINE", "Header: v", …] => …
    src = read("tests/bypass.rs")
    for m in re.finditer(r'"[^"\n]*":\s*\[((?:\s*"(?:[^"\\]|\\.)*",?)+)\s*\]\s*=>', src):
        lines = literals(m.group(1))
        lines = [l.replace("{gate}", "127.0.0.1:9000") for l in lines]
        write("classify", "\r\n".join(lines) + "\r\n\r\n")


PROXIES = "10.0.0.5 10.0.0.5/32 192.168.0.0/16 127.0.0.1"


def client_ip():
    values = set()
    for path in ["src/locate/tests.rs", "tests/bypass.rs"]:
        for lit in literals(read(path)):
            v = lit.split(":", 1)[1].strip() if lit.lower().startswith(("x-forwarded-for:", "forwarded:")) else lit
            if re.fullmatch(r"[0-9a-fA-F:.,\[\] ]+", v) and any(c.isdigit() for c in v) or "for=" in v.lower():
                values.add(v)
    fwd = ROOT / "src/locate/forwarded.rs"
    if fwd.exists():
        values |= {l for l in literals(fwd.read_text()) if "for=" in l.lower()}
    values |= {
        'for="_gazonk"', 'For="[2001:db8:cafe::17]:4711"', "for=192.0.2.60;proto=http;by=203.0.113.43",
        "for=192.0.2.43, for=198.51.100.17", "for=unknown", 'for="\\[2001:db8::1\\]"',
        "for=81.2.69.142;by=10.0.0.5, for=192.168.1.1",
    }
    for peer in ["10.0.0.5", "::ffff:10.0.0.5", "203.0.113.9"]:
        for v in sorted(values):
            for name in ["X-Forwarded-For", "Forwarded"]:
                write("client_ip", f"{peer} {PROXIES.split(' ', 1)[1]}\r\n{name}: {v}\r\n")
    write("client_ip", f"{PROXIES}\r\nX-Forwarded-For: 1.2.3.4\r\nForwarded: for=5.6.7.8\r\nX-Real-IP: 9.9.9.9\r\n")


def replication():
    src = read("src/s3/tests/replication.rs")
    ns = 'xmlns="http://s3.amazonaws.com/doc/2006-03-01/"'
    roots = {"ReplicationConfiguration": "replication", "InventoryConfiguration": "inventory",
             "BucketLoggingStatus": "logging", "AnalyticsConfiguration": "analytics"}
    good_rule = "<Destination><Bucket>arn:aws:s3:::dst-bucket</Bucket></Destination>"
    for lit in literals(src):
        body = lit.replace("{NS}", ns).replace("{S3}", "http://s3.amazonaws.com/doc/2006-03-01/")
        kinds = [k for r, k in roots.items() if r in body]
        if "<" not in body:
            continue
        if not kinds:  # a rule's inside, wrapped as rule() does
            body = f"<ReplicationConfiguration {ns}><Rule>{body}</Rule></ReplicationConfiguration>"
            kinds = ["replication"]
        body = body.replace("{}", "x").replace("{GOOD_RULE}", good_rule)
        for kind in kinds:
            write("replication", f"{kind}\n{body}")


def post_form():
    ct = "multipart/form-data; boundary=----WebKitFormBoundary7MA4YWxkTrZu0gW"
    b = "----WebKitFormBoundary7MA4YWxkTrZu0gW"

    def form(fields):
        body = "".join(f'--{b}\r\nContent-Disposition: form-data; name="{n}"\r\n\r\n{v}\r\n' for n, v in fields)
        return body + (f'--{b}\r\nContent-Disposition: form-data; name="file"; filename="a;b.jpg"\r\n'
                       f"Content-Type: image/jpeg\r\n\r\n\0binary\r\n--{b}--\r\n")

    for fields in [[("key", "uploads/a b.txt"), ("x-amz-meta-data-category", "identity")],
                   [("Key", "k"), ("X-Amz-Meta-Data-Category", "logs")],
                   [("acl", "private"), ("key", "k"), ("policy", "eyJ9"), ("x-amz-signature", "s")],
                   [("key", "a%2Fb")], [("key", "a/../b")], [("key", "${filename}")],
                   [("key", "k"), ("key", "j")], []]:
        write("post_form", f"{ct}\n{form(fields)}")
        write("post_form", f"{ct}\n\r\n{form(fields)}")
    for lit in literals(read("src/s3/tests/post.rs")):
        if "multipart" in lit and "\n" not in lit:
            write("post_form", f"{lit}\n{form([('key', 'k')])}")
        elif "Content-Disposition" in lit:
            write("post_form", f"{ct}\n{lit.replace('{B}', b)}")


def rules():
    files = sorted((ROOT / "rules").glob("*.toml"))
    texts = [f.read_text() for f in files]
    for t in texts:
        write("rules", t)
    write("rules", "\0".join(texts))
    for lit in literals(read("src/rules/compile/tests.rs")):
        if "[[" in lit or " = " in lit:
            write("rules", lit)
            write("rules", "\0".join(texts + [lit]))


for f in [classify, client_ip, replication, post_form, rules]:
    f()
for d in sorted(OUT.iterdir()):
    print(d.name, len(list(d.iterdir())))
