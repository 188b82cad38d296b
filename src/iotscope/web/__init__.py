"""The web service: a JSON API (OpenAPI at ``/docs``) and the NICTER-style dashboard over one store.

One concern per module: ``app`` builds the application (error mapping, static dashboard),
``store_reader`` opens the store read-only, ``queries`` answers every question as a library
function, ``routes_traffic`` and ``routes_live`` are the thin HTTP shells over them, ``result_cache`` keeps
answers until the next commit, ``server`` runs it all under uvicorn.
No endpoint writes: the store is opened read-only and only GET is routed.
"""
