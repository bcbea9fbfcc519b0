"""``POST /predict``: ``router`` (query and body to engine calls), ``encoding`` (outputs to
top-k scores, PNG masks and maps), ``schemas`` (the response bodies)."""
