"""The read-only web view (`swarm serve`) and the run report (`swarm report`).

data.py reads (every list, facet and record the pages show); charts.py draws (Vega-Lite through
altair, rendered to SVG by vl-convert: no script in the browser draws anything); app.py serves
(Starlette, Jinja2 templates with autoescaping, a strict Content-Security-Policy, loopback unless a
token is given); report.py writes one self-contained HTML file.
"""
