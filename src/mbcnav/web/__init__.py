"""The patient web app (FastAPI, server-rendered, htmx as progressive enhancement).

`create_app` lives in `mbcnav.web.app`; it is not imported here so that importing the package
stays cheap and free of side effects.
"""
