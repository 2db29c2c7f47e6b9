// module RunQueueExpiry
