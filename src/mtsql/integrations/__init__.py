"""Adapters to other frameworks, above the core: nothing in ``mtsql.sql``, ``data``, ``eval``, ``env``,
``rewards``, ``backends``, ``rollout`` or ``models`` imports this package.

- :mod:`mtsql.integrations.trl`: TRL's ``GRPOTrainer(environment_factory=...)``, one question per rollout
  (:class:`~mtsql.integrations.trl.SQLToolEnvironment`, :class:`~mtsql.integrations.trl.TRLReward`,
  :func:`~mtsql.integrations.trl.question_rows`); imports no TRL itself.
- :mod:`mtsql.integrations.gymnasium`: :class:`~mtsql.env.DialogueEnv` as a true ``gymnasium.Env`` with text
  spaces (needs the ``gym`` extra: ``pip install mtsql[gym]``).
- :mod:`mtsql.integrations.export`: episode records as training data for LLaMA-Factory and verl
  (``mtsql sft export``).

Importing this package imports none of its modules (nor gymnasium, TRL or pandas).
"""
