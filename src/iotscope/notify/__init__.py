"""Act on what the telescope and the survey found: tell the right people, and only them.

* :mod:`.orgs` reads ``orgs.toml`` (organizations, their networks, contacts, language);
* :mod:`.database` keeps the versioned org catalog, the alert history and the notices in the
  store's ``notify.sqlite``;
* :mod:`.daedalus` finds each organization's hosts in the darknet data (DuckDB SQL);
* :mod:`.history` decides which of them deserve an alert now (de-duplication, quiet period);
* :mod:`.xarf`, :mod:`.shadowserver` and :mod:`.templates` render what is sent; :mod:`.mail`
  builds and delivers it over SMTP, :mod:`.outbox` keeps a private copy of every message;
* :mod:`.alerts` is the DAEDALUS run, :mod:`.notices`, :mod:`.assignments` and :mod:`.status`
  the NOTICE pipeline (findings -> ISP -> subscriber -> confirmed fix), :mod:`.check` the
  operator's "was this address seen?".
"""
