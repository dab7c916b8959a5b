/**
 * Finds the compilers the native build needs: g++ for the CPU library and nvcc for the CUDA one.
 *
 * nvcc is looked for, in order, at `$NVCC`, `$CUDA_HOME/bin`, on PATH, in `/usr/local/cuda/bin`, and in
 * a pip-installed `nvidia-cuda-nvcc` (CUDA 13 wheels unpack to `site-packages/nvidia/cu13/bin`).
 */
import { dirname, join } from "node:path";

export interface Nvcc {
  path: string;
  /** Where it was found, for the build log. */
  source: string;
  /** Directories holding libcudart_static.a, passed to the linker with -L. */
  libDirs: string[];
}

export function isFile(path: string): boolean {
  try {
    return Deno.statSync(path).isFile;
  } catch {
    return false;
  }
}

function isDir(path: string): boolean {
  try {
    return Deno.statSync(path).isDirectory;
  } catch {
    return false;
  }
}

function onPath(name: string): string | undefined {
  for (const dir of (Deno.env.get("PATH") ?? "").split(":")) {
    if (dir && isFile(join(dir, name))) return join(dir, name);
  }
  return undefined;
}

/** `site-packages/nvidia` directories of every python3 interpreter we can find. */
function pipNvidiaDirs(): string[] {
  const dirs: string[] = [];
  for (const python of [Deno.env.get("GEMMAKIT_PYTHON"), "python3", "python"]) {
    if (!python) continue;
    try {
      const out = new Deno.Command(python, {
        args: ["-c", "import nvidia, sys; sys.stdout.write('\\n'.join(nvidia.__path__))"],
        stdout: "piped",
        stderr: "null",
      }).outputSync();
      if (out.success) dirs.push(...new TextDecoder().decode(out.stdout).split("\n").filter(Boolean));
    } catch {
      // interpreter absent
    }
  }
  return dirs;
}

function withLibDirs(path: string, source: string): Nvcc {
  const root = dirname(dirname(path));
  const libDirs = ["lib64", "lib", "targets/x86_64-linux/lib"].map((d) => join(root, d)).filter(isDir);
  return { path, source, libDirs };
}

/** The first nvcc found, or undefined with the places searched. */
export function findNvcc(): { nvcc?: Nvcc; searched: string[] } {
  const searched: string[] = [];
  const candidates: [string | undefined, string][] = [
    [Deno.env.get("NVCC"), "$NVCC"],
    [Deno.env.get("CUDA_HOME") && join(Deno.env.get("CUDA_HOME")!, "bin", "nvcc"), "$CUDA_HOME/bin"],
    [onPath("nvcc"), "PATH"],
    ["/usr/local/cuda/bin/nvcc", "/usr/local/cuda/bin"],
  ];
  for (const dir of pipNvidiaDirs()) {
    candidates.push([join(dir, "cu13", "bin", "nvcc"), `pip nvidia-cuda-nvcc (${dir})`]);
  }
  for (const [path, source] of candidates) {
    if (!path) {
      searched.push(`${source} (unset)`);
      continue;
    }
    searched.push(`${source}: ${path}`);
    if (isFile(path)) return { nvcc: withLibDirs(path, source), searched };
  }
  return { searched };
}

/** The C++ compiler for the CPU library and the CUDA library's host-only files. */
export function findCxx(): string | undefined {
  const cxx = Deno.env.get("CXX");
  if (cxx) return cxx;
  return onPath("g++") ?? onPath("c++");
}
