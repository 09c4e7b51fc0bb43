"""One sync run as a package of stages, each a module handing the next an object that owns its data.

pull (:mod:`.pull`) → evaluate (:mod:`segsync.segments.memberships`) → diff (:mod:`.diff`) →
gate (:mod:`.gate`) → push (:mod:`.push`) → acknowledge (:mod:`.ack`); :mod:`.runner` calls
them in order. See docs/architecture.md.
"""
