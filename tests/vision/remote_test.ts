/**
 * fetchRemoteMedia (src/vision/remote.ts): non-public addresses refused in every spelling, with one message; the
 * allowed path (a local server, reached through a test resolver and allowlist) follows redirects hop by hop, checks
 * each hop again, connects to the checked address (Host header kept), and bounds bytes and time.
 */
import assert from "node:assert/strict";
import { RemoteMediaError } from "../../src/errors.ts";
import { fetchRemoteMedia, isPublicAddress, parseIpv6 } from "../../src/vision/remote.ts";
import { ImageError, loadImage } from "../../src/vision/mod.ts";

/** The RemoteMediaError `fn` rejects with (fails the test if it resolves or throws anything else). */
async function refused(fn: () => Promise<unknown>): Promise<RemoteMediaError> {
  try {
    await fn();
  } catch (e) {
    assert.ok(e instanceof RemoteMediaError, `not a RemoteMediaError: ${e}`);
    return e;
  }
  throw new assert.AssertionError({ message: "it did not reject" });
}

const UNIFORM = /the URL could not be fetched \(it is not public, not reachable, or did not answer/;

Deno.test("isPublicAddress: every non-public range refused, in IPv4, IPv6 and embedded-IPv4 forms", () => {
  const refused = [
    "127.0.0.1",
    "127.255.255.254",
    "0.0.0.0",
    "10.1.2.3",
    "172.16.0.1",
    "172.31.255.255",
    "192.168.1.1",
    "169.254.169.254",
    "100.64.0.1",
    "224.0.0.1",
    "239.255.255.250",
    "255.255.255.255",
    "198.18.0.1",
    "::1",
    "::",
    "::ffff:127.0.0.1",
    "::ffff:7f00:1",
    "::ffff:10.0.0.1",
    "::ffff:169.254.169.254",
    "::127.0.0.1",
    "64:ff9b::a9fe:a9fe",
    "2002:7f00:1::",
    "2001::1",
    "fc00::1",
    "fd12:3456::1",
    "fe80::1",
    "fe80::1%eth0",
    "febf::1",
    "ff02::1",
    "2001:db8::1",
    "[::1]",
    "not an address",
    "1.2.3",
  ];
  for (const a of refused) assert.deepEqual(isPublicAddress(a), false, a);
  const allowed = ["8.8.8.8", "1.1.1.1", "172.32.0.1", "2606:4700:4700::1111", "::ffff:8.8.8.8", "2002:808:808::"];
  for (const a of allowed) assert.deepEqual(isPublicAddress(a), true, a);
  assert.deepEqual(parseIpv6("::ffff:1.2.3.4"), [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 255, 255, 1, 2, 3, 4]);
  assert.deepEqual(parseIpv6("1:2:3:4:5:6:7:8:9"), undefined);
  assert.deepEqual(parseIpv6("1::2::3"), undefined);
});

Deno.test("fetchRemoteMedia: loopback/private URLs in every spelling get the same message, before any connection", async () => {
  const urls = [
    "http://127.1/x.png",
    "http://0x7f.0.0.1/",
    "http://2130706433/",
    "http://0.0.0.0:80/",
    "http://[::ffff:127.0.0.1]/",
    "http://[::1]:8080/",
    "http://169.254.169.254/latest/meta-data/",
    "http://10.0.0.1/",
    "https://[fe80::1]/",
    "http://[fd00::1]/",
    "http://localhost/",
  ];
  const messages = new Set<string>();
  for (const url of urls) {
    const e = await refused(() =>
      fetchRemoteMedia(url, {
        maxBytes: 100,
        timeoutMs: 2000,
        // "localhost" goes through the resolver; a real one would answer 127.0.0.1 or ::1.
        resolve: () => Promise.resolve(["127.0.0.1"]),
      })
    );
    assert.deepEqual(e.kind, "unreachable", url);
    assert.ok(UNIFORM.test(e.message), e.message);
    messages.add(e.message);
  }
  assert.deepEqual(messages.size, 1, "one message whatever was found");
  for (const url of ["file:///etc/passwd", "ftp://example.com/", "http://user:pw@example.com/", "nope"]) {
    const e = await refused(() => fetchRemoteMedia(url, { maxBytes: 100 }));
    assert.deepEqual(e.kind, "not_allowed", url);
  }
});

/** A local server scripted per path; records the Host header of each request. */
function localServer(handler: (path: string, port: number) => Response | Promise<Response>) {
  const hosts: string[] = [];
  const server: Deno.HttpServer<Deno.NetAddr> = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen: () => {} },
    (req: Request): Response | Promise<Response> => {
      hosts.push(req.headers.get("host") ?? "");
      return handler(new URL(req.url).pathname, server.addr.port);
    },
  );
  return { server, hosts, port: server.addr.port };
}

Deno.test("fetchRemoteMedia: a local server is refused as loopback, also through a name and a redirect", async () => {
  const { server, hosts, port } = localServer((path, port) =>
    path === "/hop" ? Response.redirect(`http://other.test:${port}/img`, 302) : new Response("bytes")
  );
  // other.test is the same server by its IPv4-mapped address: reachable (shown below), but not on the allowlist.
  const resolve = (host: string) => Promise.resolve([host === "other.test" ? "::ffff:127.0.0.1" : "127.0.0.1"]);
  try {
    // Without the test allowlist: refused, however it is named, and nothing reaches the server.
    for (const url of [`http://127.0.0.1:${port}/img`, `http://media.test:${port}/img`]) {
      const e = await refused(() => fetchRemoteMedia(url, { maxBytes: 100, resolve }));
      assert.deepEqual(e.kind, "unreachable");
    }
    // A name that resolves to a public and a private address is refused as a whole.
    await refused(() =>
      fetchRemoteMedia(`http://media.test:${port}/img`, {
        maxBytes: 100,
        resolve: () => Promise.resolve(["8.8.8.8", "127.0.0.1"]),
      })
    );
    assert.deepEqual(hosts, []);
    // media.test allowed for the test; the redirect's hop to other.test is checked again and refused.
    const e = await refused(() =>
      fetchRemoteMedia(`http://media.test:${port}/hop`, { maxBytes: 100, resolve, unsafeAllowAddresses: ["127.0.0.1"] })
    );
    assert.ok(UNIFORM.test(e.message));
    assert.deepEqual(hosts, [`media.test:${port}`], "the hop never reached the server");
    // The same hop, its address allowed too, does reach it: the refusal above was the check, not the network.
    const allowBoth = { maxBytes: 100, resolve, unsafeAllowAddresses: ["127.0.0.1", "::ffff:127.0.0.1"] };
    const bytes = await fetchRemoteMedia(`http://media.test:${port}/hop`, allowBoth);
    assert.deepEqual(new TextDecoder().decode(bytes), "bytes");
    assert.deepEqual(hosts.at(-1), `other.test:${port}`);
  } finally {
    await server.shutdown();
  }
});

Deno.test("fetchRemoteMedia: the allowed path connects to the checked address, follows bounded redirects, bounds bytes and time", async () => {
  const big = new Uint8Array(5000).fill(7);
  const { server, hosts, port } = localServer(async (path, port) => {
    if (path === "/img") return new Response("PNGDATA");
    if (path === "/hop") return Response.redirect(`http://media.test:${port}/img`, 302);
    if (path === "/loop") return Response.redirect(`http://media.test:${port}/loop`, 302);
    if (path === "/big") return new Response(big);
    if (path === "/big-chunked") {
      return new Response(new ReadableStream({ start: (c) => (c.enqueue(big), c.close()) }));
    }
    if (path === "/slow") await new Promise((r) => setTimeout(r, 3000));
    if (path === "/404") return new Response("no", { status: 404 });
    return new Response("late");
  });
  let lookups = 0;
  const options = {
    maxBytes: 1000,
    timeoutMs: 1500,
    unsafeAllowAddresses: ["127.0.0.1"],
    resolve: (host: string) => {
      lookups++;
      assert.deepEqual(host, "media.test");
      return Promise.resolve(["127.0.0.1"]);
    },
  };
  try {
    const bytes = await fetchRemoteMedia(`http://media.test:${port}/img`, options);
    assert.deepEqual(new TextDecoder().decode(bytes), "PNGDATA");
    assert.deepEqual(hosts.at(-1), `media.test:${port}`, "the request names the host, the socket goes to the address");
    assert.deepEqual(lookups, 1, "resolved once, never again for the connection");
    assert.deepEqual(
      new TextDecoder().decode(await fetchRemoteMedia(`http://media.test:${port}/hop`, options)),
      "PNGDATA",
    );
    assert.deepEqual(lookups, 3, "each hop resolved and checked");

    const loop = await refused(() => fetchRemoteMedia(`http://media.test:${port}/loop`, options));
    assert.deepEqual(loop.kind, "unreachable");
    const none = await refused(() =>
      fetchRemoteMedia(`http://media.test:${port}/hop`, { ...options, maxRedirects: 0 })
    );
    assert.deepEqual(none.kind, "unreachable");
    for (const path of ["/big", "/big-chunked"]) {
      const e = await refused(() => fetchRemoteMedia(`http://media.test:${port}${path}`, options));
      assert.deepEqual(e.kind, "too_large", path);
    }
    assert.deepEqual(
      (await fetchRemoteMedia(`http://media.test:${port}/big`, { ...options, maxBytes: 5000 })).length,
      5000,
    );
    const status = await refused(() => fetchRemoteMedia(`http://media.test:${port}/404`, options));
    assert.ok(UNIFORM.test(status.message), "an HTTP error says no more than a refused address");
    const t0 = performance.now();
    const slow = await refused(() => fetchRemoteMedia(`http://media.test:${port}/slow`, options));
    assert.deepEqual(slow.kind, "unreachable");
    const took = performance.now() - t0;
    assert.ok(took < 2500, `the deadline holds: ${took} ms`);
  } finally {
    await new Promise((r) => setTimeout(r, 1600)); // let /slow finish before the server goes
    await server.shutdown();
  }
});

Deno.test("loadImage: http(s) URLs refused unless `remote` is given, then fetched through the same checks", async () => {
  const png = Uint8Array.from(
    atob("iVBORw0KGgoAAAANSUhEUgAAAAgAAAAICAIAAABLbSncAAAAFElEQVR4nGM8ISfHgA0wYRUdtBIA0MoBFD5jqJkAAAAASUVORK5CYII="),
    (c) => c.charCodeAt(0),
  );
  const { server, port } = localServer(() => new Response(png));
  try {
    await assert.rejects(() => loadImage(`http://127.0.0.1:${port}/a.png`), ImageError);
    const e = await refused(() => loadImage(`http://127.0.0.1:${port}/a.png`, { remote: {} }));
    assert.deepEqual(e.kind, "unreachable");
    const tooSmall = await refused(() =>
      loadImage({ url: `http://127.0.0.1:${port}/a.png` }, {
        maxFileBytes: 10,
        remote: { unsafeAllowAddresses: ["127.0.0.1"] },
      })
    );
    assert.deepEqual(tooSmall.kind, "too_large");
    const img = await loadImage(`http://127.0.0.1:${port}/a.png`, { remote: { unsafeAllowAddresses: ["127.0.0.1"] } });
    assert.deepEqual([img.width, img.height], [8, 8]);
  } finally {
    await server.shutdown();
  }
});
