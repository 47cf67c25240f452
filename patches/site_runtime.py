"""ttsrig start-up hook (installed into a venv as _ttsrig_site.py by `python -m patches apply`).

A `.pth` file imports this module in every interpreter of the venv, DataLoader
workers and other subprocesses included. A `.pth` hook runs beside any
sitecustomize the distribution ships, so neither replaces the other. Nothing
heavy is imported here: the torch fix runs when torch is first imported.

Switches (environment variables):
  TTSRIG_SITE=0            turn the whole hook off
  TTSRIG_ONEDNN_FIX=0      leave oneDNN on
  TTSRIG_NNPACK_FIX=0      leave NNPACK on, even on a CPU without AVX2
  TTSRIG_DATASETS_STUB=0   no `datasets` stub
"""
import importlib.abc
import importlib.machinery
import importlib.util
import json
import os
import stat
import sys

_CONFIG_FILE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_ttsrig_site.json")
# The config `python -m patches apply` writes is about 120 bytes; anything near this is not it.
_CONFIG_LIMIT = 64 * 1024


def _switched_on(variable):
    return os.environ.get(variable, "1").strip().lower() not in ("0", "false", "no", "off")


def _disable_onednn(torch):
    # torch 2.7's oneDNN kernels die with SIGFPE on pre-v2 CPUs (float32 matmul, Linear, Conv1d and the
    # operator probe of `import torch._dynamo`); with oneDNN off the same work runs on ATen's own kernels.
    # Measured under qemu-x86_64 -cpu phenom: requirements/evidence/py3.11/pre-v2-phenom.txt.
    import torch.backends.mkldnn

    torch.backends.mkldnn.enabled = False


def _cpu_has_avx2(torch):
    # torch's cpuinfo reads CPUID, so under qemu-x86_64 this is the emulated CPU (/proc/cpuinfo is the host's).
    # get_cpu_capability() is the fallback: it also reads CPUID, but ATEN_CPU_CAPABILITY can lower it.
    import torch.cpu

    supported = getattr(torch.cpu, "_is_avx2_supported", None)
    if supported is not None:
        return bool(supported())
    import torch.backends.cpu

    return torch.backends.cpu.get_cpu_capability() in ("AVX2", "AVX512")


def _disable_nnpack_without_avx2(torch):
    # NNPACK needs AVX2. Without it torch tries to initialise NNPACK again at every 2-D convolution (Conv1d
    # included, on pre-v2 where oneDNN is off) and prints "Could not initialize NNPACK! Reason: Unsupported
    # hardware." each time; switched off, convolutions take ATen's own path, as they did anyway.
    try:
        if not _cpu_has_avx2(torch):
            import torch.backends.nnpack

            torch.backends.nnpack.set_flags(False)
    except Exception as exc:  # only noise is at stake: never fail `import torch` over it
        sys.stderr.write(f"ttsrig: NNPACK left on (could not check for AVX2: {exc})\n")


class _AfterTorchImport(importlib.abc.MetaPathFinder):
    """Finds `torch` like everyone else, then runs the fixes once its module has executed."""

    def __init__(self, fixes):
        self.fixes = fixes

    def find_spec(self, name, path=None, target=None):
        if name != "torch":
            return None
        sys.meta_path.remove(self)  # one shot: the fixes run once per interpreter
        spec = importlib.util.find_spec(name)
        if spec is None or spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return spec
        loader_exec = spec.loader.exec_module
        fixes = self.fixes

        def exec_module(module):
            loader_exec(module)
            for fix in fixes:
                fix(module)

        spec.loader.exec_module = exec_module
        return spec


class _DatasetsStub(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """A `datasets` module for code that imports it but never uses it (f5_tts.model's package __init__).

    It sits at the end of sys.meta_path, so an installed `datasets` always wins. Its spec is a real
    ModuleSpec, so importlib.util.find_spec works; importlib.metadata finds no distribution, so
    transformers' availability check answers "not available" instead of raising.
    """

    def find_spec(self, name, path=None, target=None):
        if name != "datasets":
            return None
        return importlib.machinery.ModuleSpec(name, self, origin="ttsrig datasets stub")

    def create_module(self, spec):
        return None

    def exec_module(self, module):
        def unavailable(*args, **kwargs):
            raise RuntimeError("the `datasets` package is not installed in this ttsrig environment (pyarrow "
                               "cannot run on every tier); ttsrig's trainers read a manifest.jsonl instead")

        module.__ttsrig_stub__ = True
        module.Dataset = type("Dataset", (), {"__init__": unavailable})
        module.load_from_disk = unavailable
        module.load_dataset = unavailable


def _read_config():
    """The config patches apply wrote, or {} (the defaults) for anything else, silently: this runs at every
    start of Python in the venv, which must neither hang nor fail nor print over the program's own output.
    So the file is opened without waiting (a FIFO would block open) and never through a link (one to /dev/zero
    never ends), read only when it is a regular file, and only so far. envcheck.reading does the same for
    ttsrig's commands, but is not imported here: this module is a copy in the venv that must work without
    the checkout (moved, deleted, another branch's), and each start of Python pays for what it imports."""
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NOCTTY", 0) \
        | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(_CONFIG_FILE, flags)
    except OSError:  # missing, a link, not readable
        return {}
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode) or info.st_size > _CONFIG_LIMIT:
            return {}
        data = os.read(fd, _CONFIG_LIMIT + 1)
        config = json.loads(data.decode("utf-8")) if len(data) <= _CONFIG_LIMIT else {}
    except (OSError, ValueError, RecursionError):  # unreadable, not UTF-8, not JSON, nested without end
        return {}
    finally:
        os.close(fd)
    return config if isinstance(config, dict) else {}


def _install():
    if not _switched_on("TTSRIG_SITE"):
        return
    config = _read_config()
    fixes = []
    if config.get("disable_onednn") and _switched_on("TTSRIG_ONEDNN_FIX"):
        fixes.append(_disable_onednn)
    if config.get("nnpack_off_without_avx2") and _switched_on("TTSRIG_NNPACK_FIX"):
        fixes.append(_disable_nnpack_without_avx2)
    if fixes and "torch" not in sys.modules:
        sys.meta_path.insert(0, _AfterTorchImport(fixes))
    if config.get("datasets_stub", True) and _switched_on("TTSRIG_DATASETS_STUB"):
        sys.meta_path.append(_DatasetsStub())


try:
    _install()
except Exception as exc:  # a start-up hook must never stop the interpreter
    sys.stderr.write(f"ttsrig: start-up hook disabled: {exc}\n")
