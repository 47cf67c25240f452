# Sourced by the commands that start Python (bin/bootstrap, bin/lock, bin/evidence, voices/say-*, voices/audition).
# `python -m`, `python -c` and `python -` put the current directory first on sys.path, so an argparse.py or an
# envcheck/ in the folder a command is run from (/tmp, say, where anyone may write) would be imported instead of
# the standard library's or ours. -P prevents it only from Python 3.11, so each snippet that imports more than
# sys starts with $no_cwd, which takes that entry out before anything else is imported (sys is built in; with -c
# the entry is added after site has run, so no sitecustomize is looked for there either).
no_cwd='import sys; sys.path[:] = [p for p in sys.path if p]'

# as_main MODULE: the -c code that runs MODULE as `python -m MODULE` would (__main__, sys.argv[0]).
as_main() {
    printf '%s\n' "$no_cwd; import runpy; runpy.run_module('$1', run_name='__main__', alter_sys=True)"
}

# run_module PYTHON MODULE ARG...: PYTHON -m MODULE ARG..., without the current directory.
run_module() {
    _python=$1 _module=$2
    shift 2
    "$_python" -c "$(as_main "$_module")" "$@"
}

# absolute_pythonpath [FIRST]: FIRST, then PYTHONPATH's absolute entries, joined by ':'. An empty or relative
# entry names the current directory (or a folder in it), whose sitecustomize.py would run at every start.
absolute_pythonpath() {
    _kept=${1-}
    _rest=${PYTHONPATH-}:
    while [ -n "$_rest" ]; do
        _entry=${_rest%%:*}
        _rest=${_rest#*:}
        case $_entry in /*) _kept=${_kept:+$_kept:}$_entry ;; esac
    done
    printf '%s\n' "$_kept"
}

# Every Python these commands start, and what that starts in turn, sees only the absolute entries.
PYTHONPATH=$(absolute_pythonpath)
if [ -n "$PYTHONPATH" ]; then export PYTHONPATH; else unset PYTHONPATH; fi
