# Drives `deno task chat` through a pseudo terminal: a message, Ctrl-C mid-answer, then Ctrl-C at the prompt.
import os, pty, sys, time, select, json
argv = sys.argv[1:]
pid, fd = pty.fork()
if pid == 0:
    os.execvp(argv[0], argv)
out = b""
def read_until(pred, timeout):
    global out
    end = time.time() + timeout
    while time.time() < end:
        r, _, _ = select.select([fd], [], [], 0.1)
        if r:
            try:
                data = os.read(fd, 4096)
            except OSError:
                return False
            if not data:
                return False
            out += data
            if pred(out):
                return True
    return False
steps = {}
steps["prompt"] = read_until(lambda o: o.endswith(b"> "), 180)
os.write(fd, b"Tell me a long story about a dragon who learns to fly.\n")
mark = len(out)
steps["streaming"] = read_until(lambda o: len(o) - mark > 200, 120)
os.write(fd, b"\x03")
steps["stopped"] = read_until(lambda o: b"[stopped]" in o[mark:] and o.endswith(b"> "), 60)
os.write(fd, b"/stats\n")
steps["stats"] = read_until(lambda o: b"[stats" in o[mark:] and o.endswith(b"> "), 30)
os.write(fd, b"\x03")
read_until(lambda o: False, 5)
_, status = os.waitpid(pid, 0)
print(json.dumps({"steps": steps, "exit": os.waitstatus_to_exitcode(status), "out": out.decode("utf-8", "replace")[-3000:]}))
