"""Wire formats of the two API dialects: request models, handlers, renderers.

Free of any web framework so the HTTP routers and the in-process SDK share
them: the SDK returns exactly the ``data`` the server would send.
"""
