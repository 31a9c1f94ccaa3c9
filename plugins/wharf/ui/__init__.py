"""The Airflow UI plugin: Wharf's operator pages (``app``), served by Airflow's API server
behind its auth, and the extra links of the ``validate`` and ``load`` tasks (``links``).
Registered by ``plugins/wharf_plugin.py``."""
