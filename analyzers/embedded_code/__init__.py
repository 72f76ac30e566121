"""Code a model ships or names: Python source (read with ``ast``), marshalled code, chat templates.

``catalogue`` says what a dotted Python name can do; ``python_source`` is the
registered analyzer for ``.py`` files; ``marshal_names`` reads a marshalled code
object's names by hand; ``templates`` lints Jinja2 chat templates (parse only).
"""
