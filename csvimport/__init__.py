"""csvimport: migrate legacy users into Amazon Cognito user pools with CSV user import jobs."""

__version__ = "0.1.0"
