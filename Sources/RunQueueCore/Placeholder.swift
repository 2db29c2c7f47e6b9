// module RunQueueCore
