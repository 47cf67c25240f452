# Sourced by voices/say-default, say-strong and audition (with $prog and $root set): sets $python to the
# checkout's .venv Python (or $TTSRIG_PYTHON), or says in one line why it cannot run and exits 2.
python=${TTSRIG_PYTHON:-$root/.venv/bin/python}
if [ ! -x "$python" ]; then
    # The nearest part of the path that exists says why: missing, or there but not this user's to run.
    probe=$python
    while [ ! -e "$probe" ] && [ ! -L "$probe" ] && [ "$probe" != / ]; do probe=$(dirname "$probe"); done
    owner=$(stat -c %U "$probe" 2>/dev/null || echo "another user")
    if [ "$probe" = "$python" ]; then
        echo "$prog: cannot run $python: permission denied (it belongs to $owner). Run as $owner, or set TTSRIG_PYTHON to the Python of a venv you may run." >&2
    elif [ -d "$probe" ] && { [ ! -x "$probe" ] || [ ! -r "$probe" ]; }; then
        echo "$prog: cannot run $python: you may not enter $probe (it belongs to $owner). Run as $owner, have them make it readable (chmod -R a+rX $probe), or set TTSRIG_PYTHON to the Python of a venv you may run." >&2
    else
        echo "$prog: $python not found: run $root/bin/bootstrap first (or set TTSRIG_PYTHON)" >&2
    fi
    exit 2
fi
