"""Worked examples; a package so factories here import as ``examples.<module>:<function>``.

``forecast_co2.py`` is a script (run it by path); ``custom_model.py`` holds a model factory.
"""
